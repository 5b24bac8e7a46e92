"""Training data: a corpus tokenised once into memory-mapped token files, and random windows of it.

`prepare` streams text files in chunks of about 1 MB (cut after a newline, so no character or
line is split), encodes each chunk with one of our tokenizers and appends the ids to a flat
binary file of uint16 (vocabularies up to 65,536 ids) or uint32. Memory use does not grow with
the corpus. The last ``val_fraction`` of the token stream becomes the validation split, as in
nanoGPT's ``prepare.py``: at character level, the first 90% of characters train and the last
10% validate. The folder then holds

    train.bin, val.bin        the token ids, native byte order, read with ``np.memmap``
    meta.json                 {"dtype", "train_tokens", "val_tokens", "vocab_size", "tokenizer", ...}
    <tokenizer file>          the tokenizer, saved with its own ``save``

``--tokenizer char`` builds a vocabulary of the characters the corpus uses (one extra streamed
pass), so a character model has ~65 outputs instead of one per Unicode code point.
Files are concatenated as text; chunks are encoded separately, which for BPE can differ from
encoding the whole file only where a run of whitespace crosses a chunk boundary.

The stream holds the text's own ids only: a tokenizer that puts ids around every text it
encodes (BERT WordPiece's [CLS] ... [SEP], a BOS id) does not put them around every chunk.

`BatchSampler` draws ``batch_size`` windows of ``block_size + 1`` tokens at random starts from a
seeded ``torch.Generator``; its state is part of a checkpoint, so a resumed run draws the same
batches. With several processes every rank draws the same global starts and keeps its own slice.

`Masking` and `MaskedBatchSampler` make masked-LM batches for encoders, exactly as BERT
(Devlin et al. 2019, section 3.1): in every window 15% of the positions that hold no special
token are chosen (at least one); of those 80% become [MASK], 10% a random ordinary token and 10%
stay; the labels are the original ids at the chosen positions and -100 (no loss) elsewhere. The
draws come from the sampler's generator, so a resumed run masks the same way too.
Tests: tests/train/test_data.py, tests/train/test_mlm.py.
"""

import copy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from llmlab.errors import LlmlabError
from llmlab.fileio import atomic_write_text
from llmlab.tokenize import bpe_train

CHUNK_BYTES = bpe_train.CHUNK_BYTES
META = "meta.json"


# --- reading text in chunks --------------------------------------------------------------
def read_chunks(path: str | Path, chunk_bytes: int = CHUNK_BYTES, errors: str = "strict") -> Iterator[str]:
    """The text of one UTF-8 file in pieces of about ``chunk_bytes``, each ending after a newline
    (the tokenizer trainer's streaming reader, `llmlab.tokenize.bpe_train.read_chunks`)."""
    return bpe_train.read_chunks([path], errors=errors, chunk_bytes=chunk_bytes)


# --- preparing a token folder ------------------------------------------------------------
def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def corpus_char_tokenizer(files: list[Path], chunk_bytes: int = CHUNK_BYTES, errors: str = "strict"):
    """A character tokenizer whose vocabulary is the sorted set of characters in ``files``."""
    from llmlab.tokenize.simple import CharTokenizer

    chars: set[str] = set()
    for f in files:
        for text in read_chunks(f, chunk_bytes, errors):
            chars.update(text)
    return CharTokenizer(sorted(chars), name="char")


def prepare(files: list[str | Path], tokenizer: str, out: str | Path, val_fraction: float = 0.1,
            chunk_bytes: int = CHUNK_BYTES, progress: bool = True, errors: str = "strict") -> dict:
    """Tokenise ``files`` into ``out`` (train.bin, val.bin, meta.json, tokenizer); returns the meta.

    ``errors="replace"`` reads bytes that are not UTF-8 as U+FFFD instead of stopping."""
    from tqdm import tqdm

    from llmlab.tokenize import load_tokenizer

    if not files:
        raise LlmlabError("no input files given")
    if not 0 <= val_fraction < 1:
        raise LlmlabError(f"--val-fraction must be in [0, 1), not {val_fraction}")
    paths = [Path(f).expanduser() for f in files]
    for p in paths:
        if not p.is_file():
            raise LlmlabError(f"{p}: {'is a folder, expected a text file' if p.is_dir() else 'no such file'}")
    tok = corpus_char_tokenizer(paths, chunk_bytes, errors) if tokenizer == "char" else load_tokenizer(tokenizer)
    plain = text_only(tok)
    dtype = token_dtype(tok.vocab_size)
    folder = Path(out).expanduser()
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    tmp_train, tmp_val = folder / ".train.bin.tmp", folder / ".val.bin.tmp"
    total = 0
    bar = tqdm(total=sum(p.stat().st_size for p in paths), unit="B", unit_scale=True, desc="tokenising",
               disable=not progress, leave=False)
    try:
        with open(tmp_train, "wb") as w:
            for p in paths:
                for text in read_chunks(p, chunk_bytes, errors):
                    ids = np.asarray(plain.encode(text, special=False), dtype=np.int64)  # (n,)
                    if ids.size and (ids.min() < 0 or ids.max() >= tok.vocab_size):
                        raise LlmlabError(f"{p}: tokenizer produced an id outside its vocabulary")
                    w.write(ids.astype(dtype).tobytes())
                    total += ids.size
                    bar.update(len(text.encode("utf-8")))
                    bar.set_postfix(tokens=total)
        if total == 0:
            raise LlmlabError(f"{', '.join(map(str, paths))}: no tokens (the text is empty after tokenising)")
        n_train = int(total * (1 - val_fraction))  # the last fraction of the stream validates
        if n_train == 0:
            raise LlmlabError(f"--val-fraction {val_fraction} of {total} tokens leaves none to train on")
        _move_tail(tmp_train, tmp_val, n_train * dtype.itemsize)
        os.replace(tmp_train, folder / "train.bin")
        os.replace(tmp_val, folder / "val.bin")
    except BaseException:
        for t in (tmp_train, tmp_val):
            t.unlink(missing_ok=True)
        if made and not any(folder.iterdir()):  # the folder this run made for its output: not left behind empty
            folder.rmdir()
        raise
    finally:
        bar.close()
    tok_file = Path(tok.save(folder)).name
    meta = {"llmlab_tokens": 1, "dtype": dtype.name, "train_tokens": n_train, "val_tokens": total - n_train,
            "vocab_size": tok.vocab_size, "tokenizer": tok_file, "tokenizer_source": tokenizer,
            "val_fraction": val_fraction, "files": [str(p) for p in paths]}
    atomic_write_text(folder / META, json.dumps(meta, indent=1))
    return meta


def text_only(tokenizer):
    """A copy of ``tokenizer`` that adds no ids around a text ([CLS]/[SEP], BOS): a chunk is not a text."""
    plain = copy.copy(tokenizer)  # shares the vocabulary and piece cache
    for flag in ("add_special_tokens", "add_bos"):
        if getattr(plain, flag, False):
            setattr(plain, flag, False)
    return plain


def _move_tail(src: Path, dst: Path, keep_bytes: int, block: int = 1 << 24) -> None:
    """Copy ``src[keep_bytes:]`` to ``dst`` in blocks, then cut ``src`` to ``keep_bytes``."""
    with open(src, "rb") as r, open(dst, "wb") as w:
        r.seek(keep_bytes)
        while data := r.read(block):
            w.write(data)
    os.truncate(src, keep_bytes)


# --- reading a token folder --------------------------------------------------------------
class TokenData:
    """A prepared folder: ``split("train")`` / ``split("val")`` as read-only memmaps, and its tokenizer."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise LlmlabError(f"{self.folder}: no such data folder (make one with `llmlab data prepare`)")
        if not (self.folder / META).is_file():
            raise LlmlabError(f"{self.folder}: no token shards here ({META} missing); "
                              "make them with `llmlab data prepare FILE... --tokenizer NAME --out DIR`")
        try:
            self.meta = json.loads((self.folder / META).read_text(encoding="utf-8"))
            self.dtype = np.dtype(self.meta["dtype"])
            counts = {"train": int(self.meta["train_tokens"]), "val": int(self.meta["val_tokens"])}
        except (ValueError, KeyError, TypeError) as e:
            raise LlmlabError(f"{self.folder / META}: malformed ({type(e).__name__}: {e})") from None
        self._splits = {}
        for name, n in counts.items():
            f = self.folder / f"{name}.bin"
            if not f.is_file() or f.stat().st_size != n * self.dtype.itemsize:
                raise LlmlabError(f"{f}: missing or not {n} tokens of {self.dtype.name} as {META} says; "
                                  "prepare the folder again")
            self._splits[name] = np.memmap(f, dtype=self.dtype, mode="r", shape=(n,)) if n else np.zeros(0, self.dtype)

    def split(self, name: str) -> np.ndarray:
        return self._splits[name]

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    def tokenizer(self):
        from llmlab.tokenize import load_tokenizer

        return load_tokenizer(self.folder / self.meta["tokenizer"])


def iter_tokens(tokens: np.ndarray, chunk: int = 1 << 20) -> Iterator[np.ndarray]:
    """A split in consecutive int64 pieces of ``chunk`` tokens (streaming, constant memory)."""
    for start in range(0, len(tokens), chunk):
        yield np.asarray(tokens[start:start + chunk], dtype=np.int64)


# --- batches ----------------------------------------------------------------------------
class BatchSampler:
    """Random windows (x, y) of ``block_size`` tokens, y shifted by one, from a token array.

    ``batch_size`` is the global batch of one micro-step; rank ``r`` of ``world`` keeps rows
    ``r*b .. (r+1)*b - 1`` with ``b = batch_size // world``, so the ranks together see exactly
    the windows one process would draw."""

    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int, seed: int = 0,
                 rank: int = 0, world: int = 1):
        if len(tokens) < block_size + 1:
            raise LlmlabError(f"{len(tokens)} tokens is too few for one window of block_size + 1 = "
                              f"{block_size + 1}; use more text or a smaller --block-size")
        if batch_size % world:
            raise LlmlabError(f"batch size {batch_size} does not split evenly over {world} processes")
        self.tokens, self.block_size, self.batch_size = tokens, block_size, batch_size
        self.rank, self.local = rank, batch_size // world
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        own = self._starts()[self.rows].tolist()
        return windows(self.tokens, own, self.block_size)

    def _starts(self) -> torch.Tensor:
        """The global batch's window starts (B_global,), the same on every rank."""
        return torch.randint(len(self.tokens) - self.block_size, (self.batch_size,), generator=self.generator)

    @property
    def rows(self) -> slice:
        """This rank's rows of the global batch."""
        return slice(self.rank * self.local, (self.rank + 1) * self.local)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def windows(tokens: np.ndarray, starts: list[int], T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y), each (len(starts), T) int64: tokens[s : s+T] and tokens[s+1 : s+T+1]."""
    rows = np.stack([np.asarray(tokens[s:s + T + 1], dtype=np.int64) for s in starts])  # (B, T+1)
    rows = torch.from_numpy(rows)
    return rows[:, :-1], rows[:, 1:]


def eval_starts(n_tokens: int, block_size: int, max_windows: int | None = None) -> list[int]:
    """Starts of non-overlapping windows covering a split (every token predicted once), or
    ``max_windows`` of them evenly spread: a fixed sample, the same at every evaluation."""
    T = block_size
    starts = list(range(0, n_tokens - T, T))
    if max_windows is not None and len(starts) > max_windows:
        pick = np.linspace(0, len(starts) - 1, max_windows).round().astype(int)
        starts = [starts[i] for i in pick]
    return starts


# --- masked language modelling -----------------------------------------------------------
IGNORE = -100  # label of a position without loss (F.cross_entropy's default ignore_index)


@dataclass
class Masking:
    """BERT's masked-LM corruption of token windows (see the module docstring).

    ``mask_id`` is the tokenizer's [MASK], or one extra id (the tokenizer's vocab_size) added to the
    model's vocabulary when it has none. Windows are framed [CLS] t ... t [SEP] when the tokenizer
    itself adds those to every text it encodes (BERT WordPiece), so pre-training sees the layout
    `SentenceEncoder` feeds the model later; otherwise a window is the raw run of tokens."""

    mask_id: int
    vocab_size: int  # the model's vocabulary: the tokenizer's, plus one for an added [MASK]
    special_ids: tuple[int, ...]  # never chosen, never drawn as a random replacement ([MASK] included)
    cls_id: int | None = None  # set (with sep_id) when windows are framed
    sep_id: int | None = None
    added_mask: bool = False  # True when mask_id is the extra id
    rate: float = 0.15  # share of a window's ordinary positions that are chosen
    replacements: torch.Tensor = field(init=False, repr=False, compare=False)  # (n,) ordinary ids: the random 10%

    def __post_init__(self):
        ordinary = torch.ones(self.vocab_size, dtype=torch.bool)
        ordinary[list(self.special_ids)] = False
        self.replacements = ordinary.nonzero().squeeze(1)  # (n,)

    @classmethod
    def for_tokenizer(cls, tokenizer) -> "Masking":
        specials = dict(tokenizer.special_tokens)
        mask_token = getattr(tokenizer, "mask_token", "[MASK]")
        added = mask_token not in specials
        mask_id = tokenizer.vocab_size if added else specials[mask_token]
        framed = bool(getattr(tokenizer, "add_special_tokens", False))  # WordPiece: [CLS] text [SEP]
        cls_id = specials[tokenizer.cls_token] if framed else None
        sep_id = specials[tokenizer.sep_token] if framed else None
        return cls(mask_id, tokenizer.vocab_size + added, tuple(sorted({*specials.values(), mask_id})),
                   cls_id, sep_id, added)

    @property
    def framed(self) -> bool:
        return self.cls_id is not None

    def body(self, block_size: int) -> int:
        """Corpus tokens in one window of ``block_size`` ([CLS] and [SEP] take two places when framed)."""
        return block_size - 2 if self.framed else block_size

    def frame(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B, n + 2) with [CLS] before and [SEP] after each row when framed; else unchanged."""
        if not self.framed:
            return ids
        B = ids.size(0)
        return torch.cat([ids.new_full((B, 1), self.cls_id), ids, ids.new_full((B, 1), self.sep_id)], dim=1)

    def __call__(self, ids: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels), each (B, T) int64, from windows ``ids`` (B, T); three (B, T) draws from
        ``generator``: which positions, what they become, which random tokens."""
        B, T = ids.shape
        special = torch.isin(ids, torch.tensor(self.special_ids))  # (B, T)
        n = (~special).sum(dim=1)  # (B,) ordinary positions per window
        k = torch.minimum(torch.floor(n * self.rate + 0.5).clamp(min=1), n)  # (B,) how many to choose
        score = torch.rand(B, T, generator=generator).masked_fill(special, 2.0)  # specials sort last
        rank = score.argsort(dim=1).argsort(dim=1)  # (B, T): each position's place in its window's order
        chosen = rank < k[:, None]  # (B, T): k random ordinary positions per window
        action = torch.rand(B, T, generator=generator)  # (B, T): < 0.8 [MASK], < 0.9 random token, else kept
        random_ids = self.replacements[torch.randint(len(self.replacements), (B, T), generator=generator)]
        inputs = torch.where(chosen & (action < 0.8), self.mask_id, ids)
        inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, inputs)
        labels = torch.where(chosen, ids, IGNORE)
        return inputs, labels


def masked_windows(tokens: np.ndarray, starts: list[int], block_size: int, masking: Masking,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels), each (len(starts), block_size): the windows at ``starts``, framed and masked."""
    ids, _ = windows(tokens, starts, masking.body(block_size))  # (B, body)
    return masking(masking.frame(ids), generator)


class MaskedBatchSampler(BatchSampler):
    """Random masked-LM windows (inputs, labels), each (B_local, block_size).

    Every rank draws and masks the whole global batch from the same generator and keeps its own
    rows, so N processes see exactly the inputs one process would."""

    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int, masking: Masking, seed: int = 0,
                 rank: int = 0, world: int = 1):
        if masking.body(block_size) < 1:
            raise LlmlabError(f"block size {block_size} leaves no room for text between [CLS] and [SEP]")
        super().__init__(tokens, block_size, batch_size, seed, rank, world)
        self.masking = masking

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, labels = masked_windows(self.tokens, self._starts().tolist(), self.block_size, self.masking,
                                        self.generator)  # (B_global, T) each
        return inputs[self.rows], labels[self.rows]
