"""Bag of words against scikit-learn's vectorisers fed the same terms."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from llmlab.embed import BagOfWords, cosine_similarity
from llmlab.errors import LlmlabError
from tests.conftest import TEST_DATA

DOCS = [line for line in (TEST_DATA / "sample_en.txt").read_text(encoding="utf-8").splitlines() if line.strip()][:400]


def same(ours, theirs, vocabulary):
    order = [theirs.vocabulary_[t] for t in sorted(vocabulary, key=vocabulary.get)]
    return ours, theirs.transform(DOCS)[:, order]


@pytest.mark.parametrize("kw", [
    {"ngram_range": (1, 1)},
    {"ngram_range": (1, 2), "min_df": 2},
    {"ngram_range": (2, 3), "max_df": 0.5},
    {"min_df": 0.01, "max_features": 300},
], ids=["unigrams", "bigrams min_df", "only 2-3 grams", "max features"])
def test_counts_equal_sklearn(kw):
    bow = BagOfWords(tfidf=False, norm=None, **kw).fit(DOCS)
    sk = CountVectorizer(analyzer=bow.analyze, **{k: v for k, v in kw.items() if k != "ngram_range"}).fit(DOCS)
    assert set(bow.vocabulary) == set(sk.vocabulary_)
    ours, theirs = same(bow.transform(DOCS), sk, bow.vocabulary)
    assert (ours != theirs).nnz == 0


@pytest.mark.parametrize("sublinear", [False, True])
def test_tfidf_equals_sklearn(sublinear):
    bow = BagOfWords(ngram_range=(1, 2), sublinear_tf=sublinear).fit(DOCS)
    sk = TfidfVectorizer(analyzer=bow.analyze, sublinear_tf=sublinear).fit(DOCS)
    ours, theirs = same(bow.transform(DOCS), sk, bow.vocabulary)
    np.testing.assert_allclose(ours.toarray(), theirs.toarray(), rtol=1e-10, atol=1e-12)


def test_meaning_is_lost_but_words_count():
    bow = BagOfWords().fit(["dog bites man", "man bites dog", "a cat sleeps"])
    v = bow.transform(["dog bites man", "man bites dog", "a cat sleeps"])
    sims = cosine_similarity(v)
    assert sims[0, 1] == pytest.approx(1.0)  # word order is gone
    assert sims[0, 2] == 0.0


def test_mandarin_needs_a_subword_tokenizer():
    texts = ["我喜欢自然语言处理", "我喜欢机器学习"]
    words = BagOfWords().fit(texts)  # the word regex sees each sentence as one token
    assert len(words.vocabulary) == 2 and cosine_similarity(words.transform(texts))[0, 1] == 0
    chars = BagOfWords(tokenizer="char").fit(texts)
    assert cosine_similarity(chars.transform(texts))[0, 1] > 0.2  # shared characters 我 喜 欢


def test_save_load_and_errors(tmp_path):
    bow = BagOfWords(ngram_range=(1, 2), min_df=2).fit(DOCS)
    bow.save(tmp_path)
    again = BagOfWords.load(tmp_path)
    assert (again.transform(DOCS[:20]) != bow.transform(DOCS[:20])).nnz == 0
    with pytest.raises(LlmlabError, match="not fitted"):
        BagOfWords().transform(["x"])
    with pytest.raises(LlmlabError, match="no term is left"):
        BagOfWords(min_df=5).fit(["a b", "c d"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(LlmlabError, match="not a saved bag of words"):
        BagOfWords.load(tmp_path / "bad.json")


def test_numpy_numbers_read_as_scikit_learn_reads_them():
    """min_df / max_df: a whole number is a count of documents, a fraction a share, numpy's numbers included."""
    texts = ["aa bb", "aa cc", "aa dd"]
    assert BagOfWords(max_df=np.float32(1.0)).fit(texts).vocabulary == BagOfWords(max_df=1.0).fit(texts).vocabulary
    assert "aa" in BagOfWords(max_df=np.float32(1.0)).fit(texts).vocabulary  # a share of 1.0, not a count of 1
    assert set(BagOfWords(min_df=np.int64(2)).fit(texts).vocabulary) == {"aa"}  # a count of 2, not 2 x 3 documents
    assert set(CountVectorizer(min_df=np.int64(2)).fit(texts).vocabulary_) == {"aa"}  # as the reference reads it


@pytest.mark.parametrize("kwargs, message", [
    ({"max_features": -1}, "max_features must be a whole number of at least 1"),
    ({"norm": "l1"}, "norm must be 'l2' or None"),
    ({"ngram_range": (1.5, 2)}, "ngram_range must be"),
    ({"min_df": -1}, "min_df must be a count of documents >= 0"),
    ({"max_df": 1.5}, r"max_df as a fraction must be in \[0, 1\]"),
    ({"min_df": float("nan")}, "min_df must be a count of documents or a fraction"),
])
def test_options_that_would_be_ignored_or_misread_are_refused(kwargs, message):
    with pytest.raises(LlmlabError, match=message):
        BagOfWords(**kwargs)


def test_one_text_is_not_a_list_of_characters():
    with pytest.raises(LlmlabError, match="wrap it in a list"):
        BagOfWords().fit("hello world")
    with pytest.raises(LlmlabError, match="text 1 is NoneType"):
        BagOfWords().fit(["hello", None])
