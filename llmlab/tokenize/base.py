"""The one interface every tokenizer implements, and the special-token splitter they share.

A tokenizer turns text into a list of integer ids and back:

    encode(text) -> list[int]      the ids a model reads
    decode(ids)  -> str            text again (exact for byte-level BPE and char)
    tokenize(text) -> list[str]    the pieces behind the ids, as stored in the vocabulary
    vocab_size, special_tokens     sizes and reserved strings such as "<|im_end|>" or "[CLS]"
    save(dir) / load(path)         files that `llmlab.tokenize.load_tokenizer` reads back

Special tokens written literally in the text (e.g. "<|im_start|>") are matched before
anything else and become their single reserved id, as the reference libraries do.
Pass ``special=False`` to treat them as ordinary text (safer for untrusted input).
"""

import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex

from llmlab.errors import TokenizerError


class Tokenizer(ABC):
    """Base class: subclasses implement `_encode_ordinary`, `_piece`, `decode`, `save`."""

    kind: str = "tokenizer"  # short family name shown to users: "bpe", "wordpiece", "word", ...
    bos_token: str | None = None  # begin / end-of-sequence special tokens, where the vocabulary has them
    eos_token: str | None = None

    def __init__(self, special_tokens: dict[str, int] | None = None, name: str | None = None):
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self.name = name or self.kind
        self._special_re = special_pattern(self.special_tokens)

    # --- what subclasses provide -------------------------------------------------
    @abstractmethod
    def _encode_ordinary(self, text: str) -> list[int]:
        """Ids of text that contains no special tokens."""

    @abstractmethod
    def id_to_token(self, i: int) -> str:
        """The vocabulary string of one id."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Text of a list of ids."""

    @abstractmethod
    def save(self, directory: str | Path) -> Path:
        """Write the tokenizer into ``directory``; returns the main file written."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""

    # --- shared behaviour -------------------------------------------------------
    def encode(self, text: str, special: bool = True) -> list[int]:
        """Ids of ``text``; literal special-token strings become their id unless ``special=False``."""
        if not isinstance(text, str):
            raise TokenizerError(f"encode expects str, got {type(text).__name__}")
        try:
            return self._encode_special(text, special)
        except UnicodeEncodeError:  # a lone surrogate cannot become UTF-8 bytes
            pos = next(i for i, c in enumerate(text) if "\ud800" <= c <= "\udfff")  # the error's index is a piece's
            why = ""
            if "\udc80" <= text[pos] <= "\udcff":  # how Python keeps a byte that was not UTF-8 (surrogateescape)
                why = f" (the byte 0x{ord(text[pos]) - 0xdc00:02x} of input that was not UTF-8)"
            raise TokenizerError(f"text has an unpaired surrogate {text[pos]!r} at position {pos}{why}") from None

    def _encode_special(self, text: str, special: bool) -> list[int]:
        if not special or self._special_re is None:
            return self._encode_ordinary(text)
        ids: list[int] = []
        for part, is_special in split_special(text, self._special_re):
            if is_special:
                ids.append(self.special_tokens[part])
            elif part:
                ids.extend(self._encode_ordinary(part))
        return ids

    def tokenize(self, text: str, special: bool = True) -> list[str]:
        """The vocabulary pieces of ``text`` (one string per id of `encode`)."""
        return [self.id_to_token(i) for i in self.encode(text, special=special)]

    def token_bytes(self, i: int) -> bytes:
        """The bytes one id stands for, for streaming text token by token."""
        return self.decode([i]).encode("utf-8")

    def display_token(self, i: int) -> str:
        """Readable text of one id, for showing pieces to a person."""
        return self.id_to_token(i)

    def encode_batch(self, texts: Sequence[str], special: bool = True) -> list[list[int]]:
        return [self.encode(t, special=special) for t in texts]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size})"


class PieceCache(dict):
    """piece -> ids, filled on demand: a miss runs ``compute(piece)`` and keeps the result.

    Encoders look pieces up with ``map(cache.__getitem__, pieces)``, so a text whose pieces
    were seen before costs one C-level dict lookup per piece."""

    def __init__(self, compute, limit: int = 500_000):
        super().__init__()
        self._compute, self.limit = compute, limit

    def __missing__(self, piece: str) -> list[int]:
        if len(self) >= self.limit:  # bound memory on endless streams of new pieces
            self.clear()
        ids = self[piece] = self._compute(piece)
        return ids


def special_pattern(special_tokens: dict[str, int]) -> "regex.Pattern | None":
    """One alternation of the special tokens, longest first, so that the longest match wins."""
    if not special_tokens:
        return None
    alternatives = sorted(special_tokens, key=len, reverse=True)
    return regex.compile("(" + "|".join(regex.escape(s) for s in alternatives) + ")")


def split_special(text: str, pattern: "regex.Pattern") -> list[tuple[str, bool]]:
    """Split ``text`` into (part, is_special) runs; the split keeps the special strings."""
    parts = pattern.split(text)
    # regex.split with one capture group alternates: ordinary, special, ordinary, ...
    return [(p, i % 2 == 1) for i, p in enumerate(parts) if p or i % 2 == 1]


def id_list(ids) -> list:
    """Ids to decode as a list: a numpy array or torch tensor gives Python ints (so that special ids
    are recognised in it as in a list); one id or a text is refused."""
    if isinstance(ids, (str, bytes, numbers.Number)) or getattr(ids, "ndim", 1) != 1:
        raise TokenizerError(f"decode expects a sequence of ids, not {type(ids).__name__}"
                             + (f" of {ids.ndim} dimensions" if getattr(ids, "ndim", 1) != 1 else ""))
    if hasattr(ids, "tolist"):
        return ids.tolist()
    try:
        return list(ids)
    except TypeError:
        raise TokenizerError(f"decode expects a sequence of ids, not {type(ids).__name__}") from None


def is_id(i, size: int) -> bool:
    """Whether ``i`` is a whole number (Python's or numpy's, not a bool) in 0..size-1."""
    return not isinstance(i, bool) and isinstance(i, numbers.Integral) and 0 <= i < size
