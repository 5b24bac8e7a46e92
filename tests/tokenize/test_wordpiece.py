"""WordPieceTokenizer against HF `tokenizers` on all-MiniLM-L6-v2's vocabulary.

The oracle is `tokenizers.Tokenizer` loaded from the model's tokenizer.json with its
truncation (128) and padding turned off. Ids must be identical on the edge strings, on
every code point, and on every file of shared/data.
"""

import io
import json
import zipfile
from pathlib import Path

import pytest
from tokenizers import Tokenizer as HFTokenizer

from llmlab.errors import TokenizerError
from llmlab.packages import minilm_dir
from llmlab.tokenize.wordpiece import WordPieceTokenizer
from tests.conftest import SHARED_DATA as DATA_DIR
from tests.tokenize.corpus import EDGE_TEXTS, SPECIAL_TEXTS

TEXTS = EDGE_TEXTS + SPECIAL_TEXTS["minilm"]
CHUNK_LINES = 50


def hf_oracle(path: Path) -> HFTokenizer:
    oracle = HFTokenizer.from_file(str(path))
    oracle.no_truncation()
    oracle.no_padding()
    return oracle


@pytest.fixture(scope="module")
def ours() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_vocab_txt(minilm_dir() / "vocab.txt")


@pytest.fixture(scope="module")
def ours_json() -> WordPieceTokenizer:
    data = json.loads((minilm_dir() / "tokenizer.json").read_text(encoding="utf-8"))
    return WordPieceTokenizer.from_hf_json(data)


@pytest.fixture(scope="module")
def oracle() -> HFTokenizer:
    return hf_oracle(minilm_dir() / "tokenizer.json")


# --- exact ids against the reference ------------------------------------------------
@pytest.mark.parametrize("text", [t for _, t in TEXTS], ids=[label for label, _ in TEXTS])
def test_edge_ids_match_hf(ours, ours_json, oracle, text):
    expected = oracle.encode(text).ids
    assert ours.encode(text) == expected
    assert ours_json.encode(text) == expected


def test_every_code_point_matches_hf(ours, oracle):
    # "a<c>a" shows whether c is dropped, spaced, split off as punctuation, stripped as an
    # accent or kept inside the word; surrogates cannot reach HF and are left out.
    words = [f"a{chr(c)}a" for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    chunks = [" ".join(words[i : i + 4096]) for i in range(0, len(words), 4096)]
    expected = [e.ids for e in oracle.encode_batch(chunks)]
    for k, chunk in enumerate(chunks):
        got = ours.encode(chunk, special=False)
        if got != expected[k]:
            same = [a == b for a, b in zip(got, expected[k], strict=False)]
            first = same.index(False) if False in same else len(same)
            pytest.fail(f"chunk {k} (from U+{ord(chunk[1]):04X}) differs at id {first}: "
                        f"{got[first:first + 5]} vs {expected[k][first:first + 5]}")


def data_files() -> list[Path]:
    if not DATA_DIR.is_dir():
        return []
    return sorted(p for p in DATA_DIR.rglob("*") if p.is_file())


def file_texts(path: Path) -> list[tuple[str, str]]:
    """(name, text) of a file, or of each member of a .zip file; bytes decoded with errors='replace'."""
    if path.suffix != ".zip":
        return [(path.name, path.read_bytes().decode("utf-8", errors="replace"))]
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as z:
        return [(info.filename, z.read(info).decode("utf-8", errors="replace"))
                for info in z.infolist() if not info.is_dir()]


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"shared data folder {DATA_DIR} is absent")
@pytest.mark.parametrize("path", data_files(), ids=lambda p: str(p.relative_to(DATA_DIR)))
def test_data_file_ids_match_hf(ours, oracle, path):
    for member, text in file_texts(path):
        lines = text.splitlines(keepends=True)
        chunks = ["".join(lines[i : i + CHUNK_LINES]) for i in range(0, len(lines), CHUNK_LINES)]
        expected = [e.ids for e in oracle.encode_batch(chunks)]
        for k, chunk in enumerate(chunks):
            where = f"{member}: chunk {k} (from line {k * CHUNK_LINES + 1})"
            assert ours.encode(chunk) == expected[k], f"{where} differs from HF"


# --- small hand-checkable cases ---------------------------------------------------------
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "##a", "run", "!"]


def test_tiny_vocab_by_hand():
    tok = WordPieceTokenizer(TINY_VOCAB)
    # "unaffable": "##aff" beats the shorter "##a"; "runa": run ##a; "unx": no "##x" -> one [UNK].
    assert tok.tokenize("Unaffable runa! unx") == [
        "[CLS]", "un", "##aff", "##able", "run", "##a", "!", "[UNK]", "[SEP]"]
    assert tok.encode("Unaffable runa! unx") == [2, 4, 5, 6, 8, 7, 9, 1, 3]
    short = WordPieceTokenizer(TINY_VOCAB, max_input_chars_per_word=5, add_special_tokens=False)
    assert short.tokenize("unaffable runa") == ["[UNK]", "run", "##a"]  # 9 chars > 5
    assert tok.decode(tok.encode("Unaffable runa!")) == "unaffable runa!"
    assert tok.vocab_size == 10 and tok.token_to_id("##a") == 7 and tok.token_to_id("x") is None


def test_special_tokens_literal_and_disabled(ours):
    assert ours.tokenize("a [MASK] b") == ["[CLS]", "a", "[MASK]", "b", "[SEP]"]
    assert ours.tokenize("[MASK]", special=False) == ["[CLS]", "[", "mask", "]", "[SEP]"]
    assert set(ours.special_tokens) == {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}


def test_chinese_chars_are_single_tokens(ours, oracle):
    text = "我喜欢自然语言处理"
    assert ours.pre_tokenize(ours.normalize(text)) == list(text)  # one word per ideograph
    tokens = ours.tokenize(text)
    # 9 pieces: this English vocabulary has "我" but not the others, each then its own [UNK]
    assert tokens == ["[CLS]", "我", *["[UNK]"] * 8, "[SEP]"] == oracle.encode(text).tokens


def test_greek_capital_sigma_lowercases_without_final_form(ours):
    assert ours.normalize("ΟΔΟΣ") == "οδοσ"  # str.lower() would give "οδος"


def test_truncation_and_no_special_tokens(ours, oracle):
    text = "The quick brown fox jumps over the lazy dog. " * 20
    truncating = hf_oracle(minilm_dir() / "tokenizer.json")
    truncating.enable_truncation(max_length=8)
    short = WordPieceTokenizer(ours.vocab, max_length=8)
    assert short.encode(text) == truncating.encode(text).ids
    assert len(short.encode(text)) == 8 and short.encode("hi") == ours.encode("hi")
    bare = WordPieceTokenizer(ours.vocab, add_special_tokens=False)
    assert bare.encode(text) == oracle.encode(text, add_special_tokens=False).ids
    assert bare.encode("") == []
    bare_short = WordPieceTokenizer(ours.vocab, add_special_tokens=False, max_length=3)
    assert bare_short.encode(text) == bare.encode(text)[:3]
    with pytest.raises(TokenizerError, match="max_length"):
        WordPieceTokenizer(ours.vocab, max_length=1)


DECODE_TEXTS = [t for _, t in EDGE_TEXTS] + [
    "It's John's; they've gone, we're here, I'm not. Don't! Really? Yes.",
    "it ' s a 'quoted' word",
    "embeddings tokenization unaffable",
]


@pytest.mark.parametrize("text", DECODE_TEXTS)
def test_decode_matches_hf(ours, oracle, text):
    ids = oracle.encode(text).ids
    assert ours.decode(ids) == oracle.decode(ids)
    pieces = ids[2:-1]  # may start with a "##" piece
    assert ours.decode(pieces) == oracle.decode(pieces)


def test_decode_rejects_unknown_ids(ours):
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        ours.decode([ours.vocab_size])


# --- save / load ------------------------------------------------------------------------
def test_save_loads_in_hf_with_identical_ids(ours, tmp_path):
    path = ours.save(tmp_path)
    assert path == tmp_path / "tokenizer.json" and (tmp_path / "vocab.txt").is_file()
    reloaded = hf_oracle(path)
    for _, text in TEXTS:
        ids = ours.encode(text)
        assert reloaded.encode(text).ids == ids
        assert reloaded.decode(ids) == ours.decode(ids)


def test_save_round_trips(tmp_path):
    tok = WordPieceTokenizer(TINY_VOCAB, lowercase=False, strip_accents=True, tokenize_chinese_chars=False,
                             max_input_chars_per_word=7)
    path = tok.save(tmp_path)
    for again in [WordPieceTokenizer.from_hf_json(json.loads(path.read_text(encoding="utf-8"))),
                  WordPieceTokenizer.from_file(path),
                  WordPieceTokenizer.from_vocab_txt(tmp_path / "vocab.txt")]:
        assert again.vocab == tok.vocab
        assert again.special_tokens == tok.special_tokens
    again = WordPieceTokenizer.from_file(path)
    assert (again.lowercase, again.strip_accents, again.tokenize_chinese_chars) == (False, True, False)
    assert again.max_input_chars_per_word == 7
    text = "Unaffable runa! UNAFF unaffable"
    assert again.encode(text) == tok.encode(text) == hf_oracle(path).encode(text).ids


def test_tokenizer_config_beside_vocab(tmp_path):
    (tmp_path / "vocab.txt").write_text("<unk>\r\nRun\r\nrun\r\n", encoding="utf-8")  # CRLF lines
    config = {"do_lower_case": False, "unk_token": "<unk>", "tokenize_chinese_chars": False}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(TokenizerError, match="lacks '\\[CLS\\]'"):  # no [CLS]/[SEP] in this vocab
        WordPieceTokenizer.from_vocab_txt(tmp_path / "vocab.txt")
    tok = WordPieceTokenizer.from_vocab_txt(tmp_path / "vocab.txt", add_special_tokens=False)
    assert tok.vocab == ["<unk>", "Run", "run"] and tok.lowercase is False and tok.unk_token == "<unk>"
    assert tok.tokenize("Run run RUN") == ["Run", "run", "<unk>"]
    assert tok.special_tokens == {"<unk>": 0}


# --- errors ---------------------------------------------------------------------------
def test_bad_vocab_raises():
    with pytest.raises(TokenizerError, match="unknown token"):
        WordPieceTokenizer(["[CLS]", "[SEP]", "a"])
    with pytest.raises(TokenizerError, match="empty"):
        WordPieceTokenizer([])
    with pytest.raises(TokenizerError, match="duplicate token 'a'"):
        WordPieceTokenizer(["[UNK]", "[CLS]", "[SEP]", "a", "b", "a"])


def test_bad_files_raise(tmp_path):
    with pytest.raises(TokenizerError, match="no such file"):
        WordPieceTokenizer.from_vocab_txt(tmp_path / "vocab.txt")
    bad_json = tmp_path / "tokenizer.json"
    bad_json.write_text('{"model": {', encoding="utf-8")
    with pytest.raises(TokenizerError, match="invalid JSON"):
        WordPieceTokenizer.from_file(bad_json)
    data = json.loads((minilm_dir() / "tokenizer.json").read_text(encoding="utf-8"))
    bpe = {**data, "model": {**data["model"], "type": "BPE"}}
    with pytest.raises(TokenizerError, match="model type is 'BPE'"):
        WordPieceTokenizer.from_hf_json(bpe)
    prefix = {**data, "model": {**data["model"], "continuing_subword_prefix": "@@"}}
    with pytest.raises(TokenizerError, match="continuing_subword_prefix"):
        WordPieceTokenizer.from_hf_json(prefix)
    with pytest.raises(TokenizerError, match="missing key 'model'"):
        WordPieceTokenizer.from_hf_json({"version": "1.0"})
    no_unk = {**data, "model": {**data["model"], "unk_token": "<nope>"}}
    with pytest.raises(TokenizerError, match="unknown token"):
        WordPieceTokenizer.from_hf_json(no_unk)
    with pytest.raises(TokenizerError, match="unsupported post_processor"):
        WordPieceTokenizer.from_hf_json({**data, "post_processor": {"type": "RobertaProcessing"}})
    not_object = tmp_path / "list.json"
    not_object.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(TokenizerError, match="expected a JSON object"):
        WordPieceTokenizer.from_file(not_object)


def test_hf_json_options(ours):
    data = json.loads((minilm_dir() / "tokenizer.json").read_text(encoding="utf-8"))
    bert_processing = {"type": "BertProcessing", "cls": ["[CLS]", 101], "sep": ["[SEP]", 102]}
    tok = WordPieceTokenizer.from_hf_json({**data, "post_processor": bert_processing}, max_length=5)
    assert tok.encode("one two three four") == ours.encode("one two three")
    bare = WordPieceTokenizer.from_hf_json({**data, "post_processor": None})
    assert bare.encode("one two") == ours.encode("one two")[1:-1]
