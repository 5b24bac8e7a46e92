"""Static text vectors: bag of words (counts, TF-IDF), word2vec (skip-gram, CBOW)."""

from llmlab.embed.bow import BagOfWords, cosine_similarity
from llmlab.embed.word2vec import (
    KeyedVectors,
    Word2Vec,
    Word2VecConfig,
    evaluate_analogies,
    evaluate_pairs,
    train_word2vec,
)

__all__ = ["BagOfWords", "cosine_similarity", "KeyedVectors", "Word2Vec", "Word2VecConfig", "evaluate_analogies",
           "evaluate_pairs", "train_word2vec"]
