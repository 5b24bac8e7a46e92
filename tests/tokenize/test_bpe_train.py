"""BPE training: what we train loads in HF tokenizers with identical ids, and behaves."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer

from llmlab.errors import LlmlabError, TokenizerError
from llmlab.tokenize import load_tokenizer, train_bpe
from llmlab.tokenize.bpe_train import count_pieces, read_chunks
from tests.conftest import TEST_DATA
from tests.tokenize.corpus import EDGE_TEXTS

SAMPLE = TEST_DATA / "sample_en.txt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tok = train_bpe(read_chunks([SAMPLE]), vocab_size=600, special_tokens=["<|endoftext|>", "<pad>"],
                    progress=False)
    out = tmp_path_factory.mktemp("bpe")
    tok.save(out)
    return tok, out


def test_reaches_the_vocab_size_with_valid_merges(trained):
    tok, _ = trained
    assert tok.vocab_size == 600 and len(tok.merges) == 600 - 256 - 2
    assert tok.special_tokens == {"<|endoftext|>": 0, "<pad>": 1}
    for a, b in tok.merges:  # every merge builds from tokens that exist before it
        assert tok.token_to_id(a) < tok.token_to_id(a + b) and tok.token_to_id(b) < tok.token_to_id(a + b)


def test_first_merge_is_the_most_frequent_pair(trained):
    tok, _ = trained
    counts = count_pieces([SAMPLE.read_text()])
    pairs: dict = {}
    for piece, c in counts.items():
        b = list(piece.encode("utf-8"))
        for x, y in zip(b, b[1:]):
            pairs[(x, y)] = pairs.get((x, y), 0) + c
    best = max(pairs.values())
    first = tuple(tok.decode([tok.token_to_id(t)]).encode("utf-8") for t in tok.merges[0])
    assert pairs[(first[0][0], first[1][0])] == best


def test_hf_tokenizers_loads_it_with_identical_ids(trained):
    tok, out = trained
    hf = HFTokenizer.from_file(str(out / "tokenizer.json"))
    texts = [SAMPLE.read_text(), *(t for _, t in EDGE_TEXTS), "x<|endoftext|>y<pad>"]
    for text in texts:
        assert hf.encode(text, add_special_tokens=False).ids == tok.encode(text)
    assert load_tokenizer(out).encode(texts[0]) == tok.encode(texts[0])


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_round_trip_arbitrary_unicode(trained, text):
    tok, _ = trained
    assert tok.decode(tok.encode(text, special=False)) == text


def test_compresses_the_training_text(trained):
    tok, _ = trained
    text = SAMPLE.read_text()
    assert len(tok.encode(text)) < 0.5 * len(text.encode("utf-8"))


def test_min_frequency_stops_early():
    # pieces: "ab" once, " ab" twice, " cd" once -> a+b occurs 3 times, Ġ+ab twice, Ġ+c once
    tok = train_bpe(["ab ab ab cd"], vocab_size=1000, min_frequency=3, progress=False)
    assert tok.merges == [("a", "b")]
    tok = train_bpe(["ab ab ab cd"], vocab_size=1000, min_frequency=2, progress=False)
    assert tok.merges == [("a", "b"), ("Ġ", "ab")]


def test_smollm_pretokenizer_keeps_digits_apart():
    tok = train_bpe(["12 12 12 12 ab ab"], vocab_size=300, pretokenizer="smollm", progress=False)
    assert all(not any(ch.isdigit() for ch in a + b) or len(a + b) == 1 for a, b in tok.merges)
    assert tok.tokenize("12") == ["1", "2"]


def test_bad_training_input(tmp_path):
    with pytest.raises(TokenizerError, match="below"):
        train_bpe(["text"], vocab_size=100, progress=False)
    with pytest.raises(TokenizerError, match="empty"):
        train_bpe([""], vocab_size=300, progress=False)
    with pytest.raises(TokenizerError, match="a special token must be visible text, not ''"):
        train_bpe(["text"], vocab_size=300, special_tokens=[""], progress=False)
    with pytest.raises(TokenizerError, match=r"special token 'e' is one of the 256 byte symbols; .* <\|e\|>"):
        train_bpe(["text"], vocab_size=300, special_tokens=["e"], progress=False)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"ok line\ncaf\xe9\n")
    with pytest.raises(LlmlabError, match=r"not valid UTF-8 \(byte 0xe9 at offset 11\)"):
        list(read_chunks([bad]))
    assert "caf\ufffd" in "".join(read_chunks([bad], errors="replace"))
    with pytest.raises(TokenizerError, match="no such file"):
        list(read_chunks([tmp_path / "missing.txt"]))


def test_chunked_reading_keeps_every_byte(tmp_path):
    text = ("line with ünïcode 我\n" * 70_000) + "no newline at end"
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    chunks = list(read_chunks([path]))
    assert len(chunks) > 1 and "".join(chunks) == text
    assert list(read_chunks(str(path))) == list(read_chunks(path)) == chunks  # one path: that file


def test_one_text_is_one_text_not_its_characters():
    text = "low lower lowest newer newest wider widest " * 20
    assert train_bpe(text, 280, progress=False).vocab == train_bpe([text], 280, progress=False).vocab
    one_special = train_bpe(text, 280, special_tokens="<|end|>", progress=False)
    assert one_special.vocab == train_bpe(text, 280, special_tokens=["<|end|>"], progress=False).vocab
    assert one_special.vocab[0] == "<|end|>"


def test_tinyshakespeare_4096_identical_in_hf(shared_data, tmp_path):
    path = shared_data / "tinyshakespeare" / "input.txt"
    tok = train_bpe(read_chunks([path]), vocab_size=4096, progress=False)
    tok.save(tmp_path)
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    text = path.read_text()
    ids = tok.encode(text)
    assert hf.encode(text, add_special_tokens=False).ids == ids
    assert tok.vocab_size == 4096 and len(ids) < 0.35 * len(text)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model"]["type"] == "BPE"
