"""Byte-level BPE: exact ids against HF tokenizers on SmolLM2's vocabulary, the fast
encoder against the reference merge loop, byte-exact round trips, and files."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer

from llmlab.errors import TokenizerError
from llmlab.tokenize import BPETokenizer, load_tokenizer
from llmlab.tokenize.bpe import BYTE_TO_CHAR
from tests.conftest import shared_data_texts
from tests.tokenize.corpus import EDGE_TEXTS, SPECIAL_TEXTS

CASES = EDGE_TEXTS + SPECIAL_TEXTS["smollm2"]


@pytest.mark.parametrize("text", [t for _, t in CASES], ids=[label for label, _ in CASES])
def test_ids_identical_to_hf_tokenizers(smollm2, smollm2_oracle, text):
    assert smollm2.encode(text) == smollm2_oracle.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("text", [t for _, t in EDGE_TEXTS], ids=[label for label, _ in EDGE_TEXTS])
def test_fast_path_equals_reference_merge_loop(smollm2, text):
    reference = [i for piece in smollm2.pretokenize(text) for i in smollm2.bpe_reference(piece)]
    assert smollm2.encode(text, special=False) == reference


def test_ids_identical_on_every_shared_data_file(smollm2, smollm2_oracle, shared_data):
    names, texts = zip(*shared_data_texts())
    expected = [e.ids for e in smollm2_oracle.encode_batch(list(texts), add_special_tokens=False)]
    mismatched = [n for n, t, ids in zip(names, texts, expected) if smollm2.encode(t) != ids]
    assert not mismatched, f"{len(mismatched)} of {len(names)} chunks differ, first: {mismatched[:5]}"
    assert len(names) > 300  # every file was read, zip members included


def test_hand_checkable_merges():
    # bytes, then merges a+b -> "ab" (rank 0), "ab"+c -> "abc" (rank 1), Ġ+a -> "Ġa" (rank 2)
    vocab = BYTE_TO_CHAR + ["ab", "abc", "Ġa"]
    tok = BPETokenizer(vocab, [("a", "b"), ("ab", "c"), ("Ġ", "a")])
    # " abd" -> Ġ a b d: a+b (rank 0) beats Ġ+a (rank 2), then nothing merges with "ab"+"d"
    assert tok.tokenize("abc abd") == ["abc", "Ġ", "ab", "d"]
    assert tok.encode("abc") == [257]  # ids: 256 bytes, then "ab" = 256, "abc" = 257
    assert tok.decode(tok.encode("abc abd")) == "abc abd"


def test_lowest_rank_wins_over_leftmost():
    vocab = BYTE_TO_CHAR + ["bc", "ab"]
    tok = BPETokenizer(vocab, [("b", "c"), ("a", "b")])  # b+c has the lower rank
    assert tok.tokenize("abc") == ["a", "bc"]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_round_trip_smollm2(smollm2, text):
    # SmolLM2's vocabulary has no token for 6 control bytes and for the UTF-8 lead bytes
    # 0xf1/0xf2 (code points U+40000..U+BFFFF, all unassigned): those are dropped, as HF does.
    missing = {b for b in range(256) if smollm2.token_to_id(BYTE_TO_CHAR[b]) is None}
    kept = "".join(c for c in text if not missing.intersection(c.encode("utf-8")))
    assert smollm2.decode(smollm2.encode(kept, special=False)) == kept


def test_missing_bytes_are_dropped_like_the_reference(smollm2, smollm2_oracle):
    text = "a\x04b\x1dc \U00050000 d"
    assert smollm2.encode(text) == smollm2_oracle.encode(text, add_special_tokens=False).ids
    ids = smollm2.encode(text)
    # the lead byte is gone, its three continuation bytes remain and decode as U+FFFD each
    assert smollm2.decode(ids) == smollm2_oracle.decode(ids) == "abc \ufffd\ufffd\ufffd d"


def test_special_tokens(smollm2):
    assert smollm2.encode("<|im_start|>user<|im_end|>") == [1, 4093, 2]
    as_text = smollm2.encode("<|im_end|>", special=False)
    assert len(as_text) > 1 and smollm2.decode(as_text) == "<|im_end|>"
    assert smollm2.decode([1, 4093, 2]) == "<|im_start|>user<|im_end|>"
    assert smollm2.decode([1, 4093, 2], skip_special=True) == "user"


def test_metadata_from_gguf(smollm2):
    assert smollm2.vocab_size == 49152
    assert smollm2.pretokenizer == "smollm"
    assert smollm2.add_bos is False and smollm2.bos_token == "<|im_start|>" and smollm2.eos_token == "<|im_end|>"
    assert smollm2.encode("Hello") == smollm2.encode("Hello", add_bos=False)
    assert smollm2.encode("Hello", add_bos=True)[0] == 1


def test_mandarin_is_split(smollm2):
    pieces = [smollm2.display_token(i) for i in smollm2.encode("我喜欢自然语言处理")]
    assert 1 < len(pieces) < 27 and "".join(p for p in pieces if "\\x" not in p)


def test_saved_tokenizer_json_loads_in_hf_with_identical_ids(smollm2, smollm2_oracle, tmp_path):
    path = smollm2.save(tmp_path)
    hf = HFTokenizer.from_file(str(path))
    ours = load_tokenizer(tmp_path)
    for _, text in CASES:
        expected = smollm2_oracle.encode(text, add_special_tokens=False).ids
        assert hf.encode(text, add_special_tokens=False).ids == expected
        assert ours.encode(text) == expected


def test_loads_the_references_tokenizer_json(smollm2_oracle, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(smollm2_oracle.to_str())
    ours = load_tokenizer(path)
    for _, text in CASES:
        assert ours.encode(text) == smollm2_oracle.encode(text, add_special_tokens=False).ids


def test_unsupported_and_broken_inputs(smollm2, tmp_path):
    with pytest.raises(TokenizerError, match=r"surrogate '\\ud800' at position 4$"):
        smollm2.encode("bad \ud800 text")
    with pytest.raises(TokenizerError, match=r"at position 25 \(the byte 0xe9 of input that was not UTF-8\)"):
        smollm2.encode("<|im_start|>user\ncafé " + b"caf\xe9".decode("utf-8", "surrogateescape"))
    with pytest.raises(TokenizerError, match="not in the vocabulary"):
        smollm2.decode([49152])
    with pytest.raises(TokenizerError, match="id -1 is not in the vocabulary"):  # not the vocabulary's last token
        smollm2.decode([5, -1])
    doc = json.loads(smollm2_json := json.dumps(smollm2.to_hf_json()))
    doc["pre_tokenizer"] = {"type": "Whitespace"}
    (tmp_path / "tokenizer.json").write_text(json.dumps(doc))
    with pytest.raises(TokenizerError, match="pre-tokenizer"):
        load_tokenizer(tmp_path / "tokenizer.json")
    doc = json.loads(smollm2_json)
    doc["model"]["merges"].append("zzqq xxyy")
    (tmp_path / "tokenizer.json").write_text(json.dumps(doc))
    with pytest.raises(TokenizerError, match="missing from the vocabulary"):
        load_tokenizer(tmp_path / "tokenizer.json")
