"""Experiment `static-vs-contextual`: one vector per word, or one per word in its sentence.

Claim (primer, "embeddings"): word2vec gives a word one static vector, so *bank* by a river and
*bank* that lends money get the same numbers; a transformer's token vectors depend on the
sentence, so the two senses fall apart.

Words: bank (river / money), bat (animal / sport), bark (dog / tree), 8 hand-written sentences per
sense (llmlab/experiments/texts.py). Static vectors: our word2vec (llmlab.embed.word2vec; quick: the
package's English text, full: ../shared/data/corpus_en with skip-gram defaults and 2 threads).
Contextual vectors: MiniLM's last-layer token vectors (`SentenceEncoder.token_embeddings`), the
mean over the word's WordPiece pieces. Measures: leave-one-out 1-nearest-neighbour sense accuracy
by cosine, mean cosine within and across senses, and a 2-D PCA of each word's vectors.
Test: tests/experiments/test_experiments.py::test_static_vs_contextual.
"""

import numpy as np

from llmlab.experiments import EXPERIMENTS
from llmlab.experiments.common import Report, minilm, new_figure, png, setup_block, table, word2vec_vectors

NAME = "static-vs-contextual"
CLAIM = EXPERIMENTS[NAME].claim


def word_vector(encoder, sentence: str, word: str) -> np.ndarray:
    """MiniLM's contextual vector of ``word`` in ``sentence``: the mean of its pieces' vectors."""
    tokens, vectors = encoder.token_embeddings(sentence)  # (T,), (T, C)
    pieces = encoder.tokenizer.tokenize(word)[1:-1]  # without [CLS] / [SEP]
    for i in range(len(tokens) - len(pieces) + 1):
        if tokens[i:i + len(pieces)] == pieces:
            return vectors[i:i + len(pieces)].mean(dim=0).numpy()  # (C,)
    raise ValueError(f"{word!r} not found in the tokens of {sentence!r}")


def static_vector(kv, sentence: str, word: str) -> np.ndarray | None:
    """word2vec's vector of ``word`` as it occurs in ``sentence`` (a lookup: the sentence plays no part)."""
    from llmlab.embed.word2vec import tokenize

    assert word in tokenize(sentence), (word, sentence)
    return kv[word].copy() if word in kv else None


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sense_scores(vectors: np.ndarray, labels: list[str]) -> dict:
    """Leave-one-out 1-NN accuracy by cosine, and mean cosine within / across senses."""
    sim = unit(vectors) @ unit(vectors).T  # (N, N)
    labels = np.array(labels)
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(axis=1)
    np.fill_diagonal(sim, np.nan)
    return {"accuracy": float((labels[nearest] == labels).mean()),
            "within": float(np.nanmean(sim[same & off_diagonal])), "across": float(np.nanmean(sim[~same]))}


def pca2(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T  # (N, 2)


def run(quick: bool = False, seed: int = 0) -> Report:
    from llmlab.experiments.texts import SENSES

    kv, w2v_text = word2vec_vectors(quick, seed)
    encoder = minilm()
    rows, static_rows, points, checks = [], [], {}, {"accuracy": {}, "static_identical": {}}
    for word, senses in SENSES.items():
        sentences = [(s, sense) for sense, group in senses.items() for s in group]
        labels = [sense for _, sense in sentences]
        contextual = np.stack([word_vector(encoder, s, word) for s, _ in sentences])  # (N, C)
        static = [static_vector(kv, s, word) for s, _ in sentences]
        scores = sense_scores(contextual, labels)
        identical = static[0] is not None and all(np.array_equal(static[0], v) for v in static[1:])
        checks["accuracy"][word] = scores["accuracy"]
        checks["static_identical"][word] = identical
        chance = max(labels.count(x) for x in set(labels)) / len(labels)
        rows.append([word, " / ".join(senses), len(sentences), scores["accuracy"], chance, scores["within"],
                     scores["across"]])
        if static[0] is None:
            static_rows.append([word, "not in the vocabulary", 0, "-"])
        else:
            neighbours = ", ".join(w for w, _ in kv.most_similar(word, topn=8))
            static_rows.append([word, "yes" if identical else "NO", len({v.tobytes() for v in static}), neighbours])
        points[word] = (pca2(contextual), labels, list(senses))

    mean_acc = float(np.mean(list(checks["accuracy"].values())))
    md = [f"# Experiment: {NAME}\n", f"Claim: {CLAIM}\n",
          setup_block(NAME, quick, seed, [
              f"sentences: {sum(len(g) for s in SENSES.values() for g in s.values())} hand-written, 8 per sense "
              "(llmlab/experiments/texts.py)",
              f"static: {w2v_text}",
              "contextual: all-MiniLM-L6-v2 last-layer token vectors (384 dims, fp32), mean of the word's "
              "WordPiece pieces",
              "1-NN: leave-one-out nearest neighbour by cosine among the same word's sentences; "
              "chance = the larger sense's share"]),
          "## Contextual vectors (MiniLM) separate the senses\n",
          table(["word", "senses", "sentences", "1-NN accuracy", "chance", "cosine within sense",
                 "cosine across senses"], rows),
          "\n![PCA of MiniLM token vectors](pca.png)\n",
          "## Static vectors (word2vec) cannot\n",
          "The vector of a word is looked up by the word alone, so every sentence gets the same one: "
          "all cosines are 1, every neighbour is a tie, and 1-NN can do no better than chance.\n",
          table(["word", "identical in every sentence", "distinct vectors",
                 "nearest words (one list for every sense)"], static_rows),
          "\n## What the numbers say\n",
          "- MiniLM 1-NN sense accuracy: " + ", ".join(f"{w} {a:.3f}" for w, a in checks["accuracy"].items())
          + f" (mean {mean_acc:.3f}; chance 0.5)."
          + ("" if min(checks["accuracy"].values()) >= 0.8 else
             " Not every word reaches 0.8: the separation is weaker than expected for "
             + ", ".join(w for w, a in checks["accuracy"].items() if a < 0.8) + "."),
          "- word2vec: " + ", ".join(f"{w} {'identical' if v else 'NOT identical / missing'}"
                                     for w, v in checks["static_identical"].items()) + " across sentences.", ""]
    headline = {f"1-NN accuracy {w}": round(a, 3) for w, a in checks["accuracy"].items()}
    headline["word2vec identical across sentences"] = all(checks["static_identical"].values())
    return Report(NAME, CLAIM, headline, "\n".join(md), {"pca.png": plot(points)}, checks)


def plot(points: dict) -> bytes:
    fig = new_figure(4 * len(points), 4)
    axes = fig.subplots(1, len(points))
    for ax, (word, (xy, labels, senses)) in zip(axes, points.items()):
        for sense, marker in zip(senses, "os"):
            idx = [i for i, s in enumerate(labels) if s == sense]
            ax.scatter(xy[idx, 0], xy[idx, 1], marker=marker, label=sense)
        ax.set_title(f"'{word}' in 16 sentences (MiniLM)")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.legend(fontsize=8)
    return png(fig)
