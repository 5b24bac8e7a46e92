"""Byte-level BPE: GPT-2-style pre-tokenization, merges by rank, exact byte round trip.

Byte pair encoding (Sennrich et al. 2016) in its byte-level form (GPT-2, Radford et al.
2019): text is split into pieces by a regular expression (words with their leading
space, numbers, punctuation runs, whitespace runs), each piece becomes its UTF-8
bytes, and adjacent symbols are merged, lowest merge rank first, until no learned
merge applies. Bytes are written with GPT-2's printable alphabet ("Ġ" is the space
byte), which is how vocabularies in ``tokenizer.json`` and GGUF files store them.

Two encoders live here and are tested equal (tests/tokenize/test_bpe.py):
- `BPETokenizer.bpe_reference`: the textbook loop (find the best pair, merge it everywhere, repeat).
- `BPETokenizer._bpe_piece`: the fast path, a heap of candidate merges over a linked
  list of symbols, O(n log n) per piece instead of O(n^2), which matters for Mandarin,
  where a whole clause is one piece. Results are cached per piece, so ordinary prose
  costs one regex pass plus one dict lookup per piece (done by C code via `map`).

Exactness against HF ``tokenizers`` on SmolLM2's vocabulary is proven in
tests/tokenize/test_bpe.py; training lives in `bpe_train.py`.
"""

import heapq
from collections.abc import Iterable
from itertools import chain
from pathlib import Path

import regex

from llmlab.errors import TokenizerError
from llmlab.fileio import atomic_write_text
from llmlab.tokenize.base import PieceCache, Tokenizer, id_list, is_id

# Unicode White_Space, spelled out: Python's \s also matches \x1c-\x1f, the Rust regex
# engines behind the reference tokenizers do not.
_WS = r"\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

# Pre-tokenization patterns, by the names GGUF files use (``tokenizer.ggml.pre``).
PRETOKENIZERS: dict[str, str] = {
    # GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    "gpt2": (
        rf"'s|'t|'re|'ve|'m|'ll|'d| ?\p{{L}}+| ?\p{{N}}+| ?[^{_WS}\p{{L}}\p{{N}}]+"
        rf"|[{_WS}]+(?![^{_WS}])|[{_WS}]+"
    ),
    # SmolLM2 / StarCoder: every digit is split off first, then the GPT-2 pattern runs on
    # the rest. As one pattern: a digit is its own piece and ends a whitespace run just
    # as the end of the text would.
    "smollm": (
        rf"\p{{N}}|'s|'t|'re|'ve|'m|'ll|'d| ?\p{{L}}+| ?[^{_WS}\p{{L}}\p{{N}}]+"
        rf"|[{_WS}]+(?![^{_WS}\p{{N}}])|[{_WS}]+"
    ),
}
# Other names llama.cpp gives the same two pre-tokenizers.
PRETOKENIZER_ALIASES = {
    "default": "gpt2", "mpt": "gpt2", "olmo": "gpt2", "jais": "gpt2",
    "starcoder": "smollm", "refact": "smollm", "command-r": "smollm", "codeshell": "smollm",
}


def bytes_to_unicode() -> list[str]:
    """GPT-2's printable stand-in for each byte: printable Latin-1 bytes map to
    themselves, the other 68 to chr(256), chr(257), ... in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = [""] * 256, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in enumerate(BYTE_TO_CHAR)}
# str.translate table turning byte-level text back into one code point per byte (latin-1)
_TO_LATIN1 = {ord(c): b for c, b in CHAR_TO_BYTE.items()}


def _pair_key(a: int, b: int) -> int:
    """One int per symbol pair: cheaper to hash than a tuple."""
    return (a << 32) | b


class BPETokenizer(Tokenizer):
    """Byte-level BPE with a fixed vocabulary and merge list."""

    kind = "bpe"

    def __init__(
        self,
        vocab: list[str],
        merges: list[tuple[str, str]],
        special_tokens: dict[str, int] | None = None,
        pretokenizer: str = "gpt2",
        name: str | None = None,
        bos_token: str | None = None,
        eos_token: str | None = None,
        add_bos: bool = False,
    ):
        super().__init__(special_tokens, name)
        pre = PRETOKENIZER_ALIASES.get(pretokenizer, pretokenizer)
        if pre not in PRETOKENIZERS:
            raise TokenizerError(
                f"pre-tokenizer '{pretokenizer}' is not supported (supported: {', '.join(PRETOKENIZERS)})"
            )
        self.pretokenizer = pre
        self._pattern = regex.compile(PRETOKENIZERS[pre])
        self.vocab = list(vocab)
        self.merges = [tuple(m) for m in merges]
        self.token_to_id_map = {t: i for i, t in enumerate(self.vocab) if t is not None}
        if len(self.token_to_id_map) != sum(t is not None for t in self.vocab):
            seen: set[str] = set()
            twice = next(t for t in self.vocab if t is not None and (t in seen or seen.add(t)))
            raise TokenizerError(f"BPE vocabulary has duplicate tokens ({twice!r} twice; a special token that is "
                                 "also ordinary text?)")
        # Bytes the vocabulary lacks are dropped, as the reference does (SmolLM2 has no
        # token for a few control bytes and for bytes that never occur in UTF-8).
        self._byte_ids = [self.token_to_id_map.get(c) for c in BYTE_TO_CHAR]
        self._merge = {}  # pair key -> (rank, merged id)
        for rank, (a, b) in enumerate(self.merges):
            ia, ib, iab = (self.token_to_id_map.get(t) for t in (a, b, a + b))
            if ia is None or ib is None or iab is None:
                raise TokenizerError(f"merge {rank} ({a!r}, {b!r}) uses a token missing from the vocabulary")
            self._merge.setdefault(_pair_key(ia, ib), (rank, iab))
        self.bos_token, self.eos_token, self.add_bos = bos_token, eos_token, add_bos
        self._special_ids = set(self.special_tokens.values())
        self._cache = PieceCache(self._bpe_piece)

    # --- the interface ----------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def id_to_token(self, i: int) -> str:
        if not 0 <= i < len(self.vocab) or self.vocab[i] is None:
            raise TokenizerError(f"id {i} is not in the vocabulary (size {len(self.vocab)})")
        return self.vocab[i]

    def token_to_id(self, token: str) -> int | None:
        return self.token_to_id_map.get(token)

    def encode(self, text: str, special: bool = True, add_bos: bool | None = None) -> list[int]:
        """Ids of ``text``; a BOS id is prepended only if the model asks for one (SmolLM2 does not)."""
        ids = super().encode(text, special)
        if (self.add_bos if add_bos is None else add_bos) and self.bos_token is not None:
            ids.insert(0, self.special_tokens.get(self.bos_token, self.token_to_id_map[self.bos_token]))
        return ids

    def token_bytes(self, i: int) -> bytes:
        token = self.id_to_token(i)
        if i in self._special_ids:
            return token.encode("utf-8")
        return token.translate(_TO_LATIN1).encode("latin-1")

    def display_token(self, i: int) -> str:
        """The token's bytes as text; a partial UTF-8 character shows as \\xNN escapes."""
        token = self.id_to_token(i)
        if i in self._special_ids:
            return token
        return token.translate(_TO_LATIN1).encode("latin-1").decode("utf-8", "backslashreplace")

    def pretokenize(self, text: str) -> list[str]:
        """The pieces BPE runs on, before any merge."""
        return self._pattern.findall(text)

    def _encode_ordinary(self, text: str) -> list[int]:
        return list(chain.from_iterable(map(self._cache.__getitem__, self._pattern.findall(text))))

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """Text of ``ids``; bytes that do not form valid UTF-8 become U+FFFD."""
        ids = id_list(ids)
        try:
            tokens = [self.vocab[i] for i in ids]
            if ids and min(ids) < 0:  # a negative index would read the vocabulary from its end
                raise IndexError
        except (IndexError, TypeError):
            bad = next(i for i in ids if not is_id(i, len(self.vocab)))
            raise TokenizerError(f"id {bad!r} is not in the vocabulary (size {len(self.vocab)})") from None
        if not self._special_ids.intersection(ids):
            return "".join(tokens).translate(_TO_LATIN1).encode("latin-1").decode("utf-8", "replace")
        out, run = [], []
        for i, tok in zip(ids, tokens):  # special tokens are literal text, not byte-level
            if i in self._special_ids:
                out.append("".join(run).translate(_TO_LATIN1).encode("latin-1").decode("utf-8", "replace"))
                run = []
                if not skip_special:
                    out.append(tok)
            else:
                run.append(tok)
        out.append("".join(run).translate(_TO_LATIN1).encode("latin-1").decode("utf-8", "replace"))
        return "".join(out)

    # --- BPE on one piece ---------------------------------------------------------
    def _bpe_piece(self, piece: str) -> list[int]:
        """Fast path: repeatedly merge the lowest-rank adjacent pair (leftmost on ties)
        using a heap of candidates over a doubly linked list of symbols."""
        ids = [i for i in map(self._byte_ids.__getitem__, piece.encode("utf-8")) if i is not None]
        n = len(ids)
        if n < 2:
            return ids
        merge = self._merge.get
        nxt, prv = list(range(1, n + 1)), list(range(-1, n - 1))
        heap = []
        for i in range(n - 1):
            m = merge(_pair_key(ids[i], ids[i + 1]))
            if m is not None:
                heap.append((m[0], i, m[1]))
        heapq.heapify(heap)
        while heap:
            rank, i, new = heapq.heappop(heap)
            j = nxt[i]
            if ids[i] is None or j >= n:
                continue
            m = merge(_pair_key(ids[i], ids[j]))
            if m is None or m[0] != rank:  # stale: one side was merged since this entry was pushed
                continue
            ids[i], ids[j] = new, None
            k = nxt[j]
            nxt[i] = k
            if k < n:
                prv[k] = i
                m = merge(_pair_key(new, ids[k]))
                if m is not None:
                    heapq.heappush(heap, (m[0], i, m[1]))
            p = prv[i]
            if p >= 0:
                m = merge(_pair_key(ids[p], new))
                if m is not None:
                    heapq.heappush(heap, (m[0], p, m[1]))
        return [i for i in ids if i is not None]

    def bpe_reference(self, piece: str) -> list[int]:
        """Plain path: find the lowest-rank pair, merge all its occurrences left to right, repeat."""
        ids = [i for i in (self._byte_ids[b] for b in piece.encode("utf-8")) if i is not None]
        while len(ids) > 1:
            candidates = [(self._merge[k], k) for k in map(_pair_key, ids, ids[1:]) if k in self._merge]
            if not candidates:
                break
            (_, new), key = min(candidates)
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and _pair_key(ids[i], ids[i + 1]) == key:
                    out.append(new)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return ids

    # --- files ----------------------------------------------------------------
    def to_hf_json(self) -> dict:
        """This tokenizer as an HF ``tokenizer.json`` document."""
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        if self.pretokenizer == "smollm":
            pre = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
        else:
            pre = byte_level
        added = [
            {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for s, i in sorted(self.special_tokens.items(), key=lambda kv: kv[1])
        ]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": pre,
            "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {
                "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                "vocab": {t: i for i, t in enumerate(self.vocab) if t is not None},
                "merges": [f"{a} {b}" for a, b in self.merges],
            },
        }

    def save(self, directory: str | Path) -> Path:
        import json

        return atomic_write_text(Path(directory) / "tokenizer.json", json.dumps(self.to_hf_json(), ensure_ascii=False))

    @classmethod
    def from_hf_json(cls, data: dict, name: str | None = None) -> "BPETokenizer":
        """Build from a parsed HF ``tokenizer.json`` with a byte-level BPE model."""
        model = data["model"]
        if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix") or model.get("byte_fallback"):
            raise TokenizerError(
                "only byte-level BPE tokenizer.json files are supported (no prefixes, suffixes or byte fallback)"
            )
        size = 1 + max([*model["vocab"].values(), *(t["id"] for t in data.get("added_tokens") or [])])
        vocab: list = [None] * size
        for tok, i in model["vocab"].items():
            vocab[i] = tok
        specials = {}
        for t in data.get("added_tokens") or []:
            vocab[t["id"]] = t["content"]
            specials[t["content"]] = t["id"]
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        return cls(vocab, merges, specials, pretokenizer=_pretokenizer_name(data.get("pre_tokenizer")), name=name)

    @classmethod
    def from_gguf_metadata(cls, meta: dict, name: str | None = None) -> "BPETokenizer":
        """Build from the ``tokenizer.ggml.*`` keys of a GGUF file (model "gpt2" = byte-level BPE)."""
        model = meta.get("tokenizer.ggml.model")
        if model != "gpt2":
            raise TokenizerError(f"GGUF tokenizer model '{model}' is not supported (only byte-level BPE, 'gpt2')")
        tokens = meta["tokenizer.ggml.tokens"]
        types = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
        # token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
        specials = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty in (3, 4)}
        merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
        bos, eos = meta.get("tokenizer.ggml.bos_token_id"), meta.get("tokenizer.ggml.eos_token_id")
        return cls(
            tokens, merges, specials,
            pretokenizer=meta.get("tokenizer.ggml.pre", "gpt2"), name=name,
            bos_token=tokens[bos] if bos is not None else None,
            eos_token=tokens[eos] if eos is not None else None,
            add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        )


def _pretokenizer_name(pre: dict | None) -> str:
    """Recognise the GPT-2 and SmolLM2 pre-tokenizers in tokenizer.json form."""
    def is_byte_level(p):
        return p.get("type") == "ByteLevel" and p.get("use_regex", True) and not p.get("add_prefix_space", False)

    if pre and is_byte_level(pre):
        return "gpt2"
    if pre and pre.get("type") == "Sequence":
        steps = pre.get("pretokenizers", [])
        if len(steps) == 2 and steps[0] == {"type": "Digits", "individual_digits": True} and is_byte_level(steps[1]):
            return "smollm"
    raise TokenizerError(f"unsupported BPE pre-tokenizer in tokenizer.json: {pre}")
