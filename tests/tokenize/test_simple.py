"""Whitespace, word and char tokenizers: splitting rules, unknown-token policy, files."""

import pytest

from llmlab.errors import TokenizerError
from llmlab.tokenize import CharTokenizer, WhitespaceTokenizer, WordTokenizer, load_tokenizer

MANDARIN = "我喜欢自然语言处理"


def test_whitespace_splits_on_spaces_only():
    tok = load_tokenizer("whitespace")
    assert tok.tokenize("Hello, world!\tNew\nline") == ["Hello,", "world!", "New", "line"]
    assert tok.tokenize(MANDARIN) == [MANDARIN]  # no spaces: the whole sentence is one token
    assert tok.encode(MANDARIN) == [tok.unk_id]


def test_word_splits_words_numbers_punctuation():
    tok = load_tokenizer("word")
    assert tok.tokenize("Don't panic: it's 3.14, not 1,000!") == [
        "Don't", "panic", ":", "it's", "3.14", ",", "not", "1,000", "!"]
    assert tok.tokenize("café naïve") == ["café", "naïve"]
    assert tok.tokenize(MANDARIN) == [MANDARIN]  # a regex over letters cannot segment Mandarin either
    ids = tok.encode("the king")
    assert tok.unk_id not in ids and tok.decode(ids) == "the king"


def test_char_uses_code_points_by_default():
    tok = load_tokenizer("char")
    assert tok.tokenize(MANDARIN) == list(MANDARIN)
    assert tok.encode("aé我") == [97, 233, 25105]
    text = "any text 👨‍👩‍👧 \n\t keeps every character"
    assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == 0x110000


def test_unknown_policy():
    replace = WordTokenizer(["the", "cat"], unknown="replace")
    assert replace.encode("the dog") == [replace.index["the"], replace.unk_id]
    assert replace.tokenize("the dog") == ["the", "dog"]
    strict = WordTokenizer(["the", "cat"], unknown="error")
    with pytest.raises(TokenizerError, match="'dog' is not in the"):
        strict.encode("the dog")
    with pytest.raises(TokenizerError, match="policy"):
        WordTokenizer(["a"], unknown="ignore")


def test_train_keeps_most_frequent():
    tok = WhitespaceTokenizer.train(["a a a b b c", "a b d"], vocab_size=3)
    assert tok.vocab == ["[UNK]", "a", "b"]
    chars = CharTokenizer.train(["abracadabra"], vocab_size=4)
    assert chars.vocab == ["[UNK]", "a", "b", "r"] and chars.encode("abc") == [1, 2, 0]


def test_special_token_is_kept_whole():
    tok = WordTokenizer(["hello"])
    assert tok.tokenize("hello [UNK] hello") == ["hello", "[UNK]", "hello"]


@pytest.mark.parametrize("tok", [
    WhitespaceTokenizer(["a", "b"]), WordTokenizer(["x", "y"], unknown="error"), CharTokenizer(["a", "b"]),
    CharTokenizer(),
], ids=["whitespace", "word", "char vocab", "char code points"])
def test_save_and_load(tok, tmp_path):
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert type(loaded) is type(tok) and loaded.vocab == tok.vocab and loaded.unknown == tok.unknown
    assert loaded.encode("x") == tok.encode("x")


def test_bundled_vocabularies():
    for name in ("whitespace", "word"):
        tok = load_tokenizer(name)
        assert tok.vocab_size == 30_000 and tok.vocab[0] == "[UNK]"


@pytest.mark.parametrize("name", ["whitespace", "word", "char"])
def test_tokenize_takes_text_only(name):
    tok = load_tokenizer(name)
    for bad in (None, b"hi", 5, ["a"]):
        with pytest.raises(TokenizerError, match="tokenize expects str"):
            tok.tokenize(bad)
