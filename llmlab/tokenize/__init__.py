"""Text -> token ids and back: whitespace, word, char, trained BPE, real BPE and WordPiece vocabularies."""

from llmlab.tokenize.base import Tokenizer
from llmlab.tokenize.bpe import BPETokenizer
from llmlab.tokenize.bpe_train import train_bpe
from llmlab.tokenize.registry import NAMES, load_tokenizer
from llmlab.tokenize.simple import CharTokenizer, WhitespaceTokenizer, WordTokenizer
from llmlab.tokenize.wordpiece import WordPieceTokenizer

__all__ = [
    "NAMES", "BPETokenizer", "CharTokenizer", "Tokenizer", "WhitespaceTokenizer", "WordPieceTokenizer",
    "WordTokenizer", "load_tokenizer", "train_bpe",
]
