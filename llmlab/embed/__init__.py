"""Static text vectors: bag of words (counts, TF-IDF)."""

from llmlab.embed.bow import BagOfWords, cosine_similarity

__all__ = ["BagOfWords", "cosine_similarity"]
