"""Bag of words: a text becomes the counts of its tokens (and n-grams), optionally TF-IDF weighted.

The primer's first answer to "computers read numbers": count which vocabulary words occur.
Order and meaning are lost ("dog bites man" = "man bites dog"), but for many tasks counts
work well, and they add information that sentence embeddings smooth away.

    tf-idf(t, d) = tf(t, d) * idf(t),   idf(t) = ln((1 + n) / (1 + df(t))) + 1   (smoothed)
    tf = count, or 1 + ln(count) with ``sublinear_tf``; rows are L2-normalised with ``norm="l2"``

Tokens come from any llmlab tokenizer's pieces (default: the ``word`` regex, lower-cased).
Vectors are ``scipy.sparse`` CSR matrices. Documents are split with C-level regex calls and
mapped to ids with ``map`` over dicts; there is no Python loop per token.
Tests: tests/embed/test_bow.py (equal to scikit-learn's vectorisers given the same tokens).
"""

import json
import math
import numbers
from collections import Counter
from collections.abc import Iterable
from itertools import chain
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from llmlab.errors import LlmlabError
from llmlab.fileio import atomic_write_text, read_text

SAVE_FILE = "bag-of-words.json"


class BagOfWords:
    def __init__(self, tokenizer: str = "word", ngram_range: tuple[int, int] = (1, 1), min_df: float = 1,
                 max_df: float = 1.0, max_features: int | None = None, tfidf: bool = True,
                 sublinear_tf: bool = False, norm: str | None = "l2", lowercase: bool = True):
        if not (isinstance(ngram_range, (tuple, list)) and len(ngram_range) == 2
                and all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in ngram_range)
                and 1 <= ngram_range[0] <= ngram_range[1]):
            raise LlmlabError(f"ngram_range must be (low, high) with 1 <= low <= high, not {ngram_range}")
        if max_features is not None and (isinstance(max_features, bool)
                                         or not isinstance(max_features, numbers.Integral) or max_features < 1):
            raise LlmlabError(f"max_features must be a whole number of at least 1 (or None), not {max_features!r}")
        if norm not in ("l2", None):
            raise LlmlabError(f"norm must be 'l2' or None, not {norm!r}")
        self.tokenizer_name = tokenizer
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.min_df, self.max_df = _document_frequency(min_df, "min_df"), _document_frequency(max_df, "max_df")
        max_features = None if max_features is None else int(max_features)
        self.max_features, self.tfidf, self.sublinear_tf = max_features, tfidf, sublinear_tf
        self.norm, self.lowercase = norm, lowercase
        self.vocabulary: dict[str, int] = {}
        self.idf: np.ndarray | None = None
        self._split = None

    # --- tokens ---------------------------------------------------------------------------
    def analyze(self, text: str) -> list[str]:
        """The terms of one text: its pieces and their n-grams (joined by single spaces)."""
        if self._split is None:
            from llmlab.tokenize import load_tokenizer

            tok = load_tokenizer(self.tokenizer_name)
            split = getattr(tok, "split", None)  # whitespace/word/char: the raw pieces, no vocabulary lookup
            self._split = split if split is not None else (lambda t: [tok.display_token(i) for i in tok.encode(t)])
        pieces = self._split(text.lower() if self.lowercase else text)
        low, high = self.ngram_range
        grams = [pieces] if low == 1 else []
        for n in range(max(low, 2), high + 1):
            grams.append(map(" ".join, zip(*(pieces[i:] for i in range(n)))))
        return list(chain.from_iterable(grams))

    # --- fitting -----------------------------------------------------------------------------
    def fit(self, texts: Iterable[str]) -> "BagOfWords":
        docs = [self.analyze(t) for t in _texts(texts)]
        if not docs:
            raise LlmlabError("cannot fit a bag of words on no texts")
        df = Counter(chain.from_iterable(map(set, docs)))
        n = len(docs)
        low = self.min_df if isinstance(self.min_df, int) else self.min_df * n
        high = self.max_df * n if isinstance(self.max_df, float) else self.max_df
        terms = [t for t, c in df.items() if low <= c <= high]
        if self.max_features is not None:  # the most frequent terms overall, ties by term
            totals = Counter(chain.from_iterable(docs))
            terms = sorted(terms, key=lambda t: (-totals[t], t))[: self.max_features]
        if not terms:
            raise LlmlabError("no term is left after min_df / max_df / max_features; loosen them")
        self.vocabulary = {t: i for i, t in enumerate(sorted(terms))}
        dfs = np.array([df[t] for t in sorted(terms)], dtype=np.float64)
        self.idf = np.log((1 + n) / (1 + dfs)) + 1
        return self

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        """(documents, vocabulary) sparse matrix of counts or TF-IDF weights."""
        if self.idf is None:
            raise LlmlabError("the bag of words is not fitted yet")
        ids_per_doc = [[i for i in map(self.vocabulary.get, self.analyze(t)) if i is not None] for t in _texts(texts)]
        indptr = np.cumsum([0, *map(len, ids_per_doc)])
        indices = np.fromiter(chain.from_iterable(ids_per_doc), dtype=np.int64, count=int(indptr[-1]))
        m = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(ids_per_doc), len(self.vocabulary)))
        m.sum_duplicates()  # repeated terms -> counts
        if self.sublinear_tf:
            m.data = 1 + np.log(m.data)
        if self.tfidf:
            m = m @ sp.diags(self.idf)
        if self.norm == "l2":
            norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
            m = sp.diags(1 / np.where(norms > 0, norms, 1)) @ m
        return m.tocsr()

    def fit_transform(self, texts: list[str]) -> sp.csr_matrix:
        return self.fit(texts).transform(texts)

    # --- files ---------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        if self.idf is None:
            raise LlmlabError("nothing to save: the bag of words is not fitted yet")
        doc = {"tokenizer": self.tokenizer_name, "ngram_range": self.ngram_range, "min_df": self.min_df,
               "max_df": self.max_df, "max_features": self.max_features, "tfidf": self.tfidf,
               "sublinear_tf": self.sublinear_tf, "norm": self.norm, "lowercase": self.lowercase,
               "terms": sorted(self.vocabulary, key=self.vocabulary.get), "idf": self.idf.tolist()}
        return atomic_write_text(Path(directory) / SAVE_FILE, json.dumps(doc, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> "BagOfWords":
        p = Path(path)
        p = p / SAVE_FILE if p.is_dir() else p
        try:
            doc = json.loads(read_text(p))
            bow = cls(doc["tokenizer"], tuple(doc["ngram_range"]), doc["min_df"], doc["max_df"], doc["max_features"],
                      doc["tfidf"], doc["sublinear_tf"], doc["norm"], doc["lowercase"])
            bow.vocabulary = {t: i for i, t in enumerate(doc["terms"])}
            bow.idf = np.array(doc["idf"], dtype=np.float64)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise LlmlabError(f"{p}: not a saved bag of words ({type(e).__name__}: {e})") from None
        if len(bow.idf) != len(bow.vocabulary):
            raise LlmlabError(f"{p}: {len(bow.vocabulary)} terms but {len(bow.idf)} idf weights")
        return bow


def cosine_similarity(a: sp.spmatrix, b: sp.spmatrix | None = None) -> np.ndarray:
    """Dense (rows of a, rows of b) cosine similarities of sparse vectors."""
    b = a if b is None else b

    def unit(m):
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        return sp.diags(1 / np.where(norms > 0, norms, 1)) @ m

    return np.asarray((unit(a) @ unit(b).T).todense())


def _document_frequency(value, name: str) -> int | float:
    """min_df / max_df as scikit-learn reads them: a whole number is a count of documents, a fraction
    (float in [0, 1]) a share of them; numpy's numbers too."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise LlmlabError(f"{name} must be a count of documents or a fraction in [0, 1], not {value!r}")
    if isinstance(value, numbers.Integral):
        if value < 0:
            raise LlmlabError(f"{name} must be a count of documents >= 0, not {value}")
        return int(value)
    if not 0 <= value <= 1:
        raise LlmlabError(f"{name} as a fraction must be in [0, 1], not {value}")
    return float(value)


def _texts(texts) -> Iterable[str]:
    if isinstance(texts, (str, bytes)):
        raise LlmlabError("a bag of words takes a list of texts, got one text: wrap it in a list")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise LlmlabError(f"text {i} is {type(t).__name__}, not a str")
        yield t
