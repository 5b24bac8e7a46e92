"""BERT WordPiece tokenizer, written from scratch, id-for-id equal to HF ``tokenizers``.

Lineage: WordPiece as used by BERT (Devlin et al. 2018, google-research/bert
``tokenization.py``), in the form HF ``tokenizers`` serialises it: ``BertNormalizer`` +
``BertPreTokenizer`` + ``WordPiece`` model + ``TemplateProcessing`` ([CLS] A [SEP]) +
``WordPiece`` decoder. ``tests/tokenize/test_wordpiece.py`` proves equality with
``tokenizers`` on all-MiniLM-L6-v2's vocabulary: edge strings, every file of
shared/data, and every Unicode code point.

The pipeline, for text without literal special tokens (those are split off first by
`Tokenizer.encode`, case-sensitively, before any normalisation):

1. normalise: drop NUL, U+FFFD and control/format/private-use chars (keeping \\t \\n \\r);
   map every whitespace char to ' '; put spaces around CJK ideographs; strip accents
   (NFD, drop nonspacing marks) when ``strip_accents`` is True, or None with lowercase;
   lowercase char by char (so 'Σ' -> 'σ' always, with no final-sigma rule).
2. pre-tokenise: split on whitespace (dropped) and punctuation (each char its own word).
3. WordPiece each word: greedy longest match from the left, later pieces "##"-prefixed;
   a word with no full cover, or longer than ``max_input_chars_per_word``, is one [UNK].
4. add [CLS] ... [SEP]; with ``max_length`` the body is cut so the total is max_length.

Steps 1-2 run as whole-text regex/unicodedata calls; step 3 is cached per word.

Limits (stated, never silent): ``max_length`` truncation keeps the first ids and is a
runtime option (``save`` writes ``"truncation": null``; ``from_hf_json`` ignores
truncation and padding). ``decode`` rejects ids outside the vocabulary (HF drops them).
Lowercasing uses Python's Unicode tables: ~55 letters added in Unicode 16-17, and the
decomposition of U+11938, differ from HF's Rust tables, but neither form of them is in
a BERT vocabulary, so ids do not change (the every-code-point test checks this).
"""

import json
import numbers
import unicodedata
from collections import Counter
from collections.abc import Iterable
from itertools import chain
from pathlib import Path

import regex

from llmlab.errors import LlmlabError, TokenizerError
from llmlab.fileio import atomic_write_text, read_text
from llmlab.tokenize.base import PieceCache, Tokenizer, id_list, is_id

PREFIX = "##"  # marks a piece that continues a word


# --- Unicode classes, matched to HF tokenizers -----------------------------------
# HF decides "control", "nonspacing mark" and "punctuation" with the unicode_categories
# crate, whose tables are Unicode 8.0; the regex module (2026.11.19) has far newer ones.
# These lists (hex code points, found by the every-code-point test, which also catches
# a future regex release that moves them) correct for the difference.
def _hex_class(spec: str) -> str:
    """Regex class body of a list like "890-891 8e2": ranges and single code points."""
    parts = []
    for item in spec.split():
        lo, _, hi = item.partition("-")
        parts.append(regex.escape(chr(int(lo, 16))) + ("-" + regex.escape(chr(int(hi, 16))) if hi else ""))
    return "".join(parts)


_CF_NOT_HF = "890-891 8e2 110cd 13430-1343f"  # format chars (Cf) newer than Unicode 8.0
_MN_HF = "1734 1171e"  # were Mn in Unicode 8.0, Mc now
_MN_NOT_HF = """
5c8-5c9 7fd 897-89f 8ca-8e1 9fe afa-aff b53-b55 c04 c3c d00 d3b-d3c d81 eba ece 180f 1885-1886
1abf-1af0 1df6-1dfb a82c a8c5 a8ff a9bd 10d24-10d27 10d69-10d6d 10eab-10eac 10ecb-10ecf 10ef0-10eff
10f46-10f50 10f82-10f85 11070 11073-11074 110c2 111c9 111cf 1123e 11241 1133b 113bb-113c0 113ce
113d0 113d2 113e1-113e2 11438-1143f 11442-11444 11446 1145e 1182f-11837 11839-1183a 1193b-1193c
1193e 11943 119d4-119d7 119da-119db 119e0 11a01-11a0a 11a33-11a38 11a3b-11a3e 11a47 11a51-11a56
11a59-11a5b 11a8a-11a96 11a98-11a99 11b60 11b62-11b64 11b66 11c30-11c36 11c38-11c3d 11c3f
11c92-11ca7 11caa-11cb0 11cb2-11cb3 11cb5-11cb6 11d31-11d36 11d3a 11d3c-11d3d 11d3f-11d45 11d47
11d90-11d91 11d95 11d97 11df0 11ef3-11ef4 11f00-11f01 11f36-11f3a 11f40 11f42 11f5a 13440
13447-13455 1611e-16129 1612d-1612f 16f4f 16fe4 1cf00-1cf2d 1cf30-1cf46 1d127-1d128 1d25b-1d25c
1e000-1e006 1e008-1e018 1e01b-1e021 1e023-1e024 1e026-1e02a 1e08f 1e130-1e136 1e2ae 1e2ec-1e2ef
1e4ec-1e4ef 1e5ee-1e5ef 1e6e3 1e6e6 1e6ee-1e6ef 1e6f5 1e944-1e94a
"""
_P_HF = "166d 111c9"  # were Po in Unicode 8.0, not punctuation now
_P_NOT_HF = """
61d 9fd a76 c77 c84 1b4e-1b4f 1b7d-1b7f 2e43-2e4f 2e52-2e5d 2e60-2e63 10d6e 10ead 10ed0 10f55-10f59
10f86-10f89 113d4-113d5 113d7-113d8 1144b-1144f 1145a-1145b 1145d 11660-1166c 116b9 1183b
11944-11946 119e2 11a3f-11a46 11a9a-11a9c 11a9e-11aa2 11b00-11b09 11be1 11c41-11c45 11c70-11c71
11ef7-11ef8 11f43-11f4f 11fff 12ff1-12ff2 16d6d-16d6f 16e97-16e9a 16fe2 1e5ff 1e95e-1e95f
"""
# BERT's CJK ideograph blocks, as HF writes them (2B920, where google-research/bert has 2B820).
_CJK = "4e00-9fff 3400-4dbf 20000-2a6df 2a700-2b73f 2b740-2b81f 2b920-2ceaf f900-faff 2f800-2fa1f"

V1 = regex.VERSION1  # enables set operations such as [[A]--[B]] in classes
CONTROL_RE = regex.compile(rf"[[\x00\ufffd\p{{Cc}}\p{{Cf}}\p{{Co}}]--[\t\n\r{_hex_class(_CF_NOT_HF)}]]", V1)
SPACE_RE = regex.compile(r"[\p{White_Space}--[ ]]", V1)  # whitespace other than ' ' itself
CJK_RE = regex.compile(f"[{_hex_class(_CJK)}]")
MARK_RE = regex.compile(rf"[[\p{{Mn}}{_hex_class(_MN_HF)}]--[{_hex_class(_MN_NOT_HF)}]]", V1)
_PUNCT = rf"[[\p{{P}}!-/:-@\[-`{{-~{_hex_class(_P_HF)}]--[{_hex_class(_P_NOT_HF)}]]"  # ASCII or Unicode P*
WORD_RE = regex.compile(rf"[^\p{{White_Space}}{_PUNCT}]+|{_PUNCT}", V1)  # a word, or one punctuation char

# WordPiece decoder cleanup, applied to each token after its joining space is added.
CLEANUP = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
           (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


class WordPieceTokenizer(Tokenizer):
    """BERT WordPiece over a vocabulary list (id = position), with BERT's normaliser."""

    kind = "wordpiece"

    def __init__(self, vocab: list[str], *, lowercase: bool = True, strip_accents: bool | None = None,
                 tokenize_chinese_chars: bool = True, unk_token: str = "[UNK]", cls_token: str = "[CLS]",
                 sep_token: str = "[SEP]", pad_token: str = "[PAD]", mask_token: str = "[MASK]",
                 max_input_chars_per_word: int = 100, add_special_tokens: bool = True,
                 max_length: int | None = None, name: str | None = None):
        if not vocab:
            raise TokenizerError("WordPiece vocabulary is empty")
        self.vocab = list(vocab)
        self._ids = {t: i for i, t in enumerate(self.vocab)}
        if len(self._ids) != len(self.vocab):
            dup = next(t for t, n in Counter(self.vocab).items() if n > 1)
            raise TokenizerError(f"WordPiece vocabulary has duplicate token {dup!r}")
        if unk_token not in self._ids:
            raise TokenizerError(f"WordPiece vocabulary lacks the unknown token {unk_token!r}")
        if add_special_tokens and (cls_token not in self._ids or sep_token not in self._ids):
            raise TokenizerError(f"vocabulary lacks {cls_token!r} or {sep_token!r}; "
                                 "pass add_special_tokens=False")
        n_added = 2 if add_special_tokens else 0
        if max_length is not None and max_length < max(n_added, 1):
            raise TokenizerError(f"max_length={max_length} leaves no room for text and [CLS]/[SEP]")
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.unk_token, self.cls_token, self.sep_token = unk_token, cls_token, sep_token
        self.pad_token, self.mask_token = pad_token, mask_token
        self.max_input_chars_per_word = max_input_chars_per_word
        self.add_special_tokens = add_special_tokens
        self.max_length = max_length
        self.unk_id = self._ids[unk_token]
        self._cache = PieceCache(self._wordpiece, limit=200_000)
        specials = [pad_token, unk_token, cls_token, sep_token, mask_token]
        super().__init__({t: self._ids[t] for t in specials if t in self._ids}, name=name)

    # --- encoding ------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """BertNormalizer (clean_text=True) on the whole text at once."""
        text = SPACE_RE.sub(" ", CONTROL_RE.sub("", text))
        if self.tokenize_chinese_chars:
            text = CJK_RE.sub(r" \g<0> ", text)
        if self.strip_accents or (self.strip_accents is None and self.lowercase):
            text = MARK_RE.sub("", unicodedata.normalize("NFD", text))
        if self.lowercase:
            text = text.replace("Σ", "σ").lower()  # 'σ' first: str.lower would give final 'ς'
        return text

    def pre_tokenize(self, text: str) -> list[str]:
        """BertPreTokenizer: words between whitespace, each punctuation char its own word."""
        return WORD_RE.findall(text)

    def _wordpiece(self, word: str) -> list[int]:
        """Greedy longest-match-first pieces of one word; the whole word is [UNK] if any gap."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_id]
        ids, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                i = self._ids.get(word[start:end] if start == 0 else PREFIX + word[start:end])
                if i is not None:
                    break
            else:
                return [self.unk_id]
            ids.append(i)
            start = end
        return ids

    def _encode_ordinary(self, text: str) -> list[int]:
        words = self.pre_tokenize(self.normalize(text))
        return list(chain.from_iterable(map(self._cache.__getitem__, words)))

    def encode(self, text: str, special: bool = True) -> list[int]:
        """[CLS] ids [SEP] (unless add_special_tokens=False), cut to max_length if set."""
        ids = super().encode(text, special=special)
        n_added = 2 if self.add_special_tokens else 0
        if self.max_length is not None and len(ids) + n_added > self.max_length:
            ids = ids[: self.max_length - n_added]
        if self.add_special_tokens:
            ids = [self._ids[self.cls_token], *ids, self._ids[self.sep_token]]
        return ids

    # --- vocabulary and decoding ---------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def id_to_token(self, i: int) -> str:
        if not is_id(i, len(self.vocab)):
            raise TokenizerError(f"id {i!r} is outside the vocabulary (0..{len(self.vocab) - 1})")
        return self.vocab[i]

    def token_to_id(self, token: str) -> int | None:
        return self._ids.get(token)

    def decode(self, ids: Iterable[int]) -> str:
        """HF WordPiece decoder: skip specials, glue "##" pieces, space-join the rest, clean up."""
        special_ids = set(self.special_tokens.values())
        ids = id_list(ids)
        tokens = [self.id_to_token(i) for i in ids if not (isinstance(i, numbers.Integral) and i in special_ids)]
        out = []
        for k, token in enumerate(tokens):
            if k > 0:  # the first token keeps a "##" prefix, as in HF
                token = token[len(PREFIX):] if token.startswith(PREFIX) else " " + token
            for dirty, clean in CLEANUP:
                token = token.replace(dirty, clean)
            out.append(token)
        return "".join(out)

    # --- files -----------------------------------------------------------------------
    @classmethod
    def from_vocab_txt(cls, path: str | Path, name: str | None = None, **overrides) -> "WordPieceTokenizer":
        """vocab.txt (token per line, id = line number) plus a tokenizer_config.json beside it.

        ``overrides`` are constructor options (``max_length=128``...) that win over the config.
        """
        path = Path(path)
        try:
            text = read_text(path)
        except LlmlabError as e:
            raise TokenizerError(str(e)) from None
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # the final newline ends the last line
        vocab = [line.removesuffix("\r") for line in lines]
        if "" in vocab:
            raise TokenizerError(f"{path}: line {vocab.index('') + 1} is empty, expected a token")
        options = {}
        config_path = path.parent / "tokenizer_config.json"
        if config_path.is_file():
            config = _read_json(config_path)
            if not isinstance(config, dict):
                raise TokenizerError(f"{config_path}: expected a JSON object")
            options = {"lowercase": config.get("do_lower_case", True),
                       "strip_accents": config.get("strip_accents"),
                       "tokenize_chinese_chars": config.get("tokenize_chinese_chars", True)}
            for key in ["unk_token", "cls_token", "sep_token", "pad_token", "mask_token"]:
                if isinstance(config.get(key), str):  # newer files may store a dict here
                    options[key] = config[key]
        try:
            return cls(vocab, name=name, **{**options, **overrides})
        except TokenizerError as e:
            raise TokenizerError(f"{path}: {e}") from None

    @classmethod
    def from_hf_json(cls, data: dict, name: str | None = None, *, source: str = "tokenizer.json",
                     **overrides) -> "WordPieceTokenizer":
        """Build from a parsed HF tokenizer.json with a WordPiece model and BERT normaliser.

        Its truncation and padding sections are ignored; ``overrides`` are constructor options.
        """
        try:
            model = data["model"]
            if model.get("type") != "WordPiece":
                raise TokenizerError(f"{source}: model type is {model.get('type')!r}, expected 'WordPiece'")
            if model.get("continuing_subword_prefix", PREFIX) != PREFIX:
                raise TokenizerError(f"{source}: continuing_subword_prefix must be {PREFIX!r}")
            by_id = sorted(model["vocab"].items(), key=lambda kv: kv[1])
            if [i for _, i in by_id] != list(range(len(by_id))):
                raise TokenizerError(f"{source}: model.vocab ids are not 0..{len(by_id) - 1}")
            norm = data.get("normalizer") or {}
            if norm.get("type") != "BertNormalizer" or not norm.get("clean_text", True):
                raise TokenizerError(f"{source}: normalizer must be BertNormalizer with clean_text, "
                                     f"got {norm.get('type')!r}")
            pre = data.get("pre_tokenizer") or {}
            if pre.get("type") != "BertPreTokenizer":
                raise TokenizerError(f"{source}: pre_tokenizer must be BertPreTokenizer, "
                                     f"got {pre.get('type')!r}")
            options = {"lowercase": norm.get("lowercase", True), "strip_accents": norm.get("strip_accents"),
                       "tokenize_chinese_chars": norm.get("handle_chinese_chars", True),
                       "unk_token": model.get("unk_token", "[UNK]"),
                       "max_input_chars_per_word": model.get("max_input_chars_per_word", 100),
                       **_cls_sep_options(data.get("post_processor"), source)}
            vocab = [t for t, _ in by_id]
        except KeyError as e:
            raise TokenizerError(f"{source}: not a WordPiece tokenizer.json (missing key {e})") from None
        except (TypeError, AttributeError, IndexError) as e:
            raise TokenizerError(f"{source}: not a WordPiece tokenizer.json ({e})") from None
        try:
            return cls(vocab, name=name, **{**options, **overrides})
        except TokenizerError as e:
            raise TokenizerError(f"{source}: {e}") from None

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None, **overrides) -> "WordPieceTokenizer":
        """tokenizer.json (HF format) or vocab.txt, by the file's suffix."""
        path = Path(path)
        if path.suffix == ".txt":
            return cls.from_vocab_txt(path, name=name, **overrides)
        data = _read_json(path)
        if not isinstance(data, dict):
            raise TokenizerError(f"{path}: expected a JSON object")
        return cls.from_hf_json(data, name=name, source=str(path), **overrides)

    def save(self, directory: str | Path) -> Path:
        """Write tokenizer.json (loadable by HF ``tokenizers``) and vocab.txt; returns the former."""
        directory = Path(directory)
        post = None
        if self.add_special_tokens:
            post = _template(self.cls_token, self._ids[self.cls_token],
                             self.sep_token, self._ids[self.sep_token])
        data = {
            "version": "1.0",
            "truncation": None,  # max_length is a runtime option, not saved
            "padding": None,
            "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True}
                             for t, i in sorted(self.special_tokens.items(), key=lambda kv: kv[1])],
            "normalizer": {"type": "BertNormalizer", "clean_text": True,
                           "handle_chinese_chars": self.tokenize_chinese_chars,
                           "strip_accents": self.strip_accents, "lowercase": self.lowercase},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": post,
            "decoder": {"type": "WordPiece", "prefix": PREFIX, "cleanup": True},
            "model": {"type": "WordPiece", "unk_token": self.unk_token, "continuing_subword_prefix": PREFIX,
                      "max_input_chars_per_word": self.max_input_chars_per_word,
                      "vocab": {t: i for i, t in enumerate(self.vocab)}},
        }
        atomic_write_text(directory / "vocab.txt", "".join(t + "\n" for t in self.vocab))
        return atomic_write_text(directory / "tokenizer.json", json.dumps(data, ensure_ascii=False, indent=1))


def _template(cls_token: str, cls_id: int, sep_token: str, sep_id: int) -> dict:
    """HF TemplateProcessing for "[CLS] A [SEP]" (and "[CLS] A [SEP] B [SEP]" for pairs)."""
    def special(token: str, type_id: int) -> dict:
        return {"SpecialToken": {"id": token, "type_id": type_id}}

    def sequence(seq: str, type_id: int) -> dict:
        return {"Sequence": {"id": seq, "type_id": type_id}}

    return {
        "type": "TemplateProcessing",
        "single": [special(cls_token, 0), sequence("A", 0), special(sep_token, 0)],
        "pair": [special(cls_token, 0), sequence("A", 0), special(sep_token, 0),
                 sequence("B", 1), special(sep_token, 1)],
        "special_tokens": {t: {"id": t, "ids": [i], "tokens": [t]}
                           for t, i in [(cls_token, cls_id), (sep_token, sep_id)]},
    }


def _cls_sep_options(post: dict | None, source: str) -> dict:
    """[CLS]/[SEP] names from a TemplateProcessing or BertProcessing post-processor (None: no specials)."""
    if post is None:
        return {"add_special_tokens": False}
    if post.get("type") == "BertProcessing":
        return {"cls_token": post["cls"][0], "sep_token": post["sep"][0]}
    if post.get("type") == "TemplateProcessing":
        single = post["single"]  # expected: SpecialToken, Sequence A, SpecialToken
        first, last = single[0], single[-1]
        if len(single) == 3 and "SpecialToken" in first and "SpecialToken" in last:
            return {"cls_token": first["SpecialToken"]["id"], "sep_token": last["SpecialToken"]["id"]}
    raise TokenizerError(f"{source}: unsupported post_processor (expected [CLS] A [SEP]), "
                         f"got {post.get('type')!r}")


def _read_json(path: Path):
    """Parsed JSON of a file, with one-line TokenizerErrors for every way it can be wrong."""
    try:
        text = read_text(path)
    except LlmlabError as e:
        raise TokenizerError(str(e)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
