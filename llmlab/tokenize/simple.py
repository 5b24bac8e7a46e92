"""The three simplest tokenizers: whitespace, word (regex) and character.

Each splits text into pieces by a fixed rule and looks every piece up in a vocabulary.
They show what subword tokenizers fix: a whitespace or word vocabulary never covers
every word (a Mandarin sentence has no spaces, so it arrives as one unknown "word"),
and a character vocabulary covers everything but makes sequences long.

Unknown pieces follow an explicit policy: ``unknown="replace"`` maps them to the
``[UNK]`` id (the piece is still reported by `tokenize`), ``unknown="error"`` raises.
`decode` of whitespace and word ids joins pieces with single spaces, so it is lossy by
design; `decode` of char ids is exact when no character was unknown.

The default ``char`` tokenizer needs no vocabulary: its ids are Unicode code points.
The default ``whitespace`` and ``word`` vocabularies ship with the package
(``vocab/*.txt``, built by scripts/build_word_vocabs.py from public-domain English).
Tests: tests/tokenize/test_simple.py.
"""

import json
from collections import Counter
from collections.abc import Iterable
from itertools import repeat
from pathlib import Path

import regex

from llmlab.errors import TokenizerError
from llmlab.fileio import atomic_write_text
from llmlab.tokenize.base import Tokenizer, id_list, is_id, split_special

UNK = "[UNK]"
SAVE_FILE = "llmlab-tokenizer.json"
VOCAB_DIR = Path(__file__).parent / "vocab"

# numbers (3.14, 1,000), words with inner apostrophes (don't, l'homme), any other
# non-space character alone (punctuation, symbols, emoji parts)
WORD_PATTERN = r"\p{N}+(?:[.,]\p{N}+)*|[\p{L}\p{M}]+(?:['’][\p{L}\p{M}]+)*|[^\s\p{L}\p{M}\p{N}]"


class SplitTokenizer(Tokenizer):
    """Split by a rule, then look each piece up in a fixed vocabulary."""

    separator = " "  # what `decode` puts between pieces

    def __init__(self, vocab: list[str], unk_token: str = UNK, unknown: str = "replace", name: str | None = None):
        if unknown not in ("replace", "error"):
            raise TokenizerError(f"unknown-token policy must be 'replace' or 'error', not {unknown!r}")
        vocab = list(vocab)
        if unk_token not in vocab:
            vocab.insert(0, unk_token)
        if len(set(vocab)) != len(vocab):
            raise TokenizerError("vocabulary has duplicate entries")
        self.vocab, self.unk_token, self.unknown = vocab, unk_token, unknown
        self.index = {t: i for i, t in enumerate(vocab)}
        self.unk_id = self.index[unk_token]
        super().__init__({unk_token: self.unk_id}, name)

    def split(self, text: str) -> list[str]:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def id_to_token(self, i: int) -> str:
        if not is_id(i, len(self.vocab)):
            raise TokenizerError(f"id {i!r} is not in the vocabulary (size {len(self.vocab)})")
        return self.vocab[i]

    def _encode_ordinary(self, text: str) -> list[int]:
        pieces = self.split(text)
        ids = list(map(self.index.get, pieces, repeat(self.unk_id)))
        if self.unknown == "error" and self.unk_id in ids:
            piece = pieces[ids.index(self.unk_id)]
            raise TokenizerError(f"{piece!r} is not in the {self.name} vocabulary (unknown='error')")
        return ids

    def tokenize(self, text: str, special: bool = True) -> list[str]:
        """The pieces themselves, unknown ones included as written."""
        if not isinstance(text, str):
            raise TokenizerError(f"tokenize expects str, got {type(text).__name__}")
        if not special or self._special_re is None:
            return self.split(text)
        pieces: list[str] = []
        for part, is_special in split_special(text, self._special_re):
            pieces.extend([part] if is_special else self.split(part))
        return pieces

    def decode(self, ids: Iterable[int]) -> str:
        return self.separator.join(self.id_to_token(i) for i in id_list(ids))

    def save(self, directory: str | Path) -> Path:
        doc = {"llmlab_tokenizer": self.kind, "unk_token": self.unk_token, "unknown": self.unknown, "vocab": self.vocab}
        return atomic_write_text(Path(directory) / SAVE_FILE, json.dumps(doc, ensure_ascii=False))

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, min_frequency: int = 1, **kwargs) -> "SplitTokenizer":
        """The ``vocab_size - 1`` most frequent pieces (ties by first appearance), plus [UNK]."""
        counts: Counter = Counter()
        probe = cls([], **kwargs)
        for text in texts:
            counts.update(probe.split(text))
        vocab = [p for p, c in counts.most_common(vocab_size - 1) if c >= min_frequency]
        return cls(vocab, **kwargs)


class WhitespaceTokenizer(SplitTokenizer):
    """Pieces are the runs of non-space characters: ``"Hello, world!"`` -> ``["Hello,", "world!"]``."""

    kind = "whitespace"

    def split(self, text: str) -> list[str]:
        return text.split()


class WordTokenizer(SplitTokenizer):
    """Words, numbers and punctuation apart: ``"Hello, world!"`` -> ``["Hello", ",", "world", "!"]``."""

    kind = "word"
    _pattern = regex.compile(WORD_PATTERN)

    def split(self, text: str) -> list[str]:
        return self._pattern.findall(text)


class CharTokenizer(SplitTokenizer):
    """One piece per Unicode code point. Without a vocabulary, the id is the code point."""

    kind = "char"
    separator = ""

    def __init__(self, vocab: list[str] | None = None, unk_token: str = UNK, unknown: str = "replace",
                 name: str | None = None):
        self.codepoints = vocab is None
        if self.codepoints:  # no table: every character is known, id = ord(c)
            Tokenizer.__init__(self, {}, name)
            self.unk_token, self.unknown, self.vocab = None, "replace", None
        else:
            super().__init__(vocab, unk_token, unknown, name)

    def split(self, text: str) -> list[str]:
        return list(text)

    @property
    def vocab_size(self) -> int:
        return 0x110000 if self.codepoints else len(self.vocab)

    def id_to_token(self, i: int) -> str:
        if self.codepoints:
            if not is_id(i, 0x110000):
                raise TokenizerError(f"id {i!r} is not a Unicode code point")
            return chr(i)
        return super().id_to_token(i)

    def _encode_ordinary(self, text: str) -> list[int]:
        return list(map(ord, text)) if self.codepoints else super()._encode_ordinary(text)

    def save(self, directory: str | Path) -> Path:
        if self.codepoints:
            doc = {"llmlab_tokenizer": "char", "vocab": None}
            return atomic_write_text(Path(directory) / SAVE_FILE, json.dumps(doc))
        return super().save(directory)


SPLIT_TOKENIZERS = {c.kind: c for c in (WhitespaceTokenizer, WordTokenizer, CharTokenizer)}


def default_split_tokenizer(kind: str) -> SplitTokenizer:
    """The named ``whitespace``, ``word`` or ``char`` tokenizer with its bundled vocabulary."""
    if kind == "char":
        return CharTokenizer(name="char")
    path = VOCAB_DIR / f"{kind}.txt"
    vocab = path.read_text(encoding="utf-8").split("\n")
    return SPLIT_TOKENIZERS[kind]([v for v in vocab if v], name=kind)


def split_tokenizer_from_doc(doc: dict, name: str | None = None) -> SplitTokenizer:
    """Rebuild a tokenizer written by `SplitTokenizer.save`."""
    kind = doc.get("llmlab_tokenizer")
    if kind not in SPLIT_TOKENIZERS:
        raise TokenizerError(f"unknown llmlab tokenizer type {kind!r}")
    if kind == "char" and doc.get("vocab") is None:
        return CharTokenizer(name=name)
    return SPLIT_TOKENIZERS[kind](
        doc["vocab"], unk_token=doc.get("unk_token", UNK), unknown=doc.get("unknown", "replace"), name=name
    )
