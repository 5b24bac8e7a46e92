"""Train a byte-level BPE vocabulary from text files.

The algorithm is the one byte-level BPE tokenizers are trained with (Sennrich et al.
2016; GPT-2): pre-tokenize the corpus with the GPT-2 pattern and count each distinct
piece; start from the 256 byte symbols; then repeatedly take the most frequent adjacent
pair of symbols (summed over pieces, weighted by piece count), give it a new id, and
rewrite every piece that contains it, until the vocabulary reaches its target size or
the best pair is rarer than ``min_frequency``.

Only the pieces that contain the chosen pair are touched at each step (an index
pair -> pieces), and the best pair comes from a lazy max-heap, so a step costs the
length of the affected pieces rather than the whole corpus. Ties go to the pair with
the smaller ids, so training is deterministic.

The result is a `BPETokenizer`; `save` writes an HF ``tokenizer.json`` that HF
``tokenizers`` loads with identical ids (tests/tokenize/test_bpe_train.py).
"""

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import regex
from tqdm import tqdm

from llmlab.errors import TokenizerError
from llmlab.fileio import decode_utf8, path_list
from llmlab.tokenize.bpe import BYTE_TO_CHAR, PRETOKENIZERS, BPETokenizer

CHUNK_BYTES = 1 << 20


def read_chunks(paths: Iterable[str | Path], errors: str = "strict", chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """Yield the text of files in pieces of about ``chunk_bytes``, each ending after a newline (or at
    the end of its file), so memory stays flat; joined, a file's pieces are the file. A line longer
    than 16 pieces is cut between two characters, never inside one. ``paths``: one path or several."""
    for path in path_list(paths):
        p = Path(path)
        if not p.is_file():
            raise TokenizerError(f"{p}: no such file" if not p.exists() else f"{p}: is not a file")
        offset, carry = 0, b""
        with open(p, "rb") as f:
            while block := f.read(chunk_bytes):
                data = carry + block
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # no newline yet: keep reading, unless the line is huge
                    if len(data) < 16 * chunk_bytes:
                        carry = data
                        continue
                    cut = _utf8_boundary(data)
                yield decode_utf8(data[:cut], str(p), errors, offset)
                offset += cut
                carry = data[cut:]
            if carry:
                yield decode_utf8(carry, str(p), errors, offset)


def _utf8_boundary(data: bytes) -> int:
    """The start of the last character of ``data``: cutting there never splits a UTF-8 character."""
    i = len(data) - 1
    while i > 0 and (data[i] & 0xC0) == 0x80:  # 10xxxxxx: a continuation byte
        i -= 1
    return i


def count_pieces(texts: Iterable[str], pretokenizer: str = "gpt2") -> Counter:
    """How often each pre-tokenized piece occurs in ``texts``."""
    pattern = regex.compile(PRETOKENIZERS[pretokenizer])
    counts: Counter = Counter()
    for text in texts:
        counts.update(pattern.findall(text))
    return counts


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    special_tokens: Iterable[str] = ("<|endoftext|>",),
    min_frequency: int = 2,
    pretokenizer: str = "gpt2",
    progress: bool = True,
    name: str | None = None,
) -> BPETokenizer:
    """Learn merges from ``texts`` (texts, or one text) until the vocabulary has ``vocab_size`` entries."""
    texts = [texts] if isinstance(texts, str) else texts  # not a text per character
    specials = list(dict.fromkeys([special_tokens] if isinstance(special_tokens, str) else special_tokens))
    for s in specials:
        if not s.strip():
            raise TokenizerError(f"a special token must be visible text, not {s!r}")
        if s in BYTE_TO_CHAR:  # "e", "!": the byte alphabet has it already
            raise TokenizerError(f"special token {s!r} is one of the 256 byte symbols; use a marker that text does "
                                 f"not hold, such as <|{s}|>")
    base = len(specials) + 256
    if vocab_size < base:
        raise TokenizerError(f"vocab size {vocab_size} is below the {base} base symbols (256 bytes + specials)")
    if pretokenizer not in PRETOKENIZERS:
        raise TokenizerError(f"unknown pre-tokenizer '{pretokenizer}' (known: {', '.join(PRETOKENIZERS)})")
    counts = count_pieces(texts, pretokenizer)
    for s in specials:  # special tokens are never learned from text
        counts.pop(s, None)
    if not counts:
        raise TokenizerError("the training text is empty")

    vocab = specials + BYTE_TO_CHAR  # ids: specials, then the 256 bytes in byte order
    first_byte = len(specials)
    words = [[first_byte + b for b in piece.encode("utf-8")] for piece in counts]
    freqs = list(counts.values())
    pair_count: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> pieces that contain it
    for wi, (w, f) in enumerate(zip(words, freqs)):
        for pair in zip(w, w[1:]):
            pair_count[pair] += f
            where[pair].add(wi)
    heap = [(-c, a, b) for (a, b), c in pair_count.items()]
    heapq.heapify(heap)

    merges: list[tuple[str, str]] = []
    bar = tqdm(total=vocab_size - base, desc="BPE merges", unit="merge", disable=not progress, mininterval=0.25)
    while len(vocab) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        c = pair_count.get((a, b), 0)
        if c != -neg:  # stale entry: the count changed since it was pushed
            if c > 0:
                heapq.heappush(heap, (-c, a, b))
            continue
        if c < min_frequency:
            break
        new = len(vocab)
        vocab.append(vocab[a] + vocab[b])
        merges.append((vocab[a], vocab[b]))
        grown = _apply_merge(a, b, new, where.pop((a, b)), words, freqs, pair_count, where)
        for pair in grown:
            heapq.heappush(heap, (-pair_count[pair], *pair))
        bar.update(1)
    bar.close()
    special_ids = {s: i for i, s in enumerate(specials)}
    eos = "<|endoftext|>" if "<|endoftext|>" in special_ids else None
    return BPETokenizer(vocab, merges, special_ids, pretokenizer=pretokenizer, name=name, eos_token=eos)


def _apply_merge(a, b, new, word_ids, words, freqs, pair_count, where) -> set[tuple[int, int]]:
    """Rewrite every piece in ``word_ids`` with (a, b) -> new; update pair counts and the
    index; return the pairs whose count grew (they need a fresh heap entry)."""
    grown = set()
    for wi in word_ids:
        w, f = words[wi], freqs[wi]
        out, i, n = [], 0, len(w)
        while i < n:
            if i + 1 < n and w[i] == a and w[i + 1] == b:
                out.append(new)
                i += 2
            else:
                out.append(w[i])
                i += 1
        if len(out) == n:
            continue  # index entry was stale: the pair left this piece earlier
        for pair in zip(w, w[1:]):
            c = pair_count[pair] - f
            if c:
                pair_count[pair] = c
            else:
                del pair_count[pair]
        for pair in zip(out, out[1:]):
            pair_count[pair] += f
            if new in pair:  # only pairs with the new symbol are new to this piece, or grow
                where[pair].add(wi)
                grown.add(pair)
        words[wi] = out
    return grown
