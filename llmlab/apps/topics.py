"""Topics: the common issues in a pile of texts (support tickets, reviews, questions).

The pipeline of BERTopic (Grootendorst 2022), written out:

1. **Embed** every text with MiniLM (normalised sentence vectors).
2. **Reduce** the 384 dimensions to 5 with UMAP (McInnes et al. 2018): ``n_neighbors=15``,
   ``min_dist=0.0`` (points of one topic packed tightly, which density clustering needs),
   cosine metric, seeded (``random_state``), so a run is deterministic.
3. **Cluster** with HDBSCAN (Campello et al. 2013; scikit-learn), excess-of-mass selection.
   ``min_cluster_size`` is the minimum topic size, by default ``max(10, N // 200)``: a common
   issue is at least 0.5% of the texts, never fewer than 10. ``min_samples`` is half of it,
   so a text needs fewer close neighbours to count as core and fewer are left as noise.
   Texts in no dense region are outliers (topic -1). HDBSCAN never makes all texts one cluster
   by default, so texts all about one thing (30 "my card is lost") would give no topic at all;
   when it finds none, it runs once more allowing a single cluster, kept if at least half of the
   texts are in it or clearly about it (cosine >= 0.6 to its centroid, as in step 5;
   ``details["single_cluster"]``): a clump in noise is no topic. Excess of mass can also keep
   one wide cluster over the finer ones inside it (270 of 300 short Chinese reviews in one
   topic, the other 30 in a second): a cluster holding more than half of the texts, when there
   are others, is clustered again on its own and replaced by its parts when it has several
   (``details["split"]``); its fringe becomes outliers, which step 5 reassigns.
4. **Merge** near-duplicate topics: topic centroids (mean MiniLM vectors) joined by average
   linkage while their cosine similarity is at least 0.9, i.e. the same issue split in two.
5. **Outliers, both ways**, judged in the full embedding space rather than the 5-D projection.
   A topic member whose cosine similarity to its topic's centroid is below 0.3 becomes an
   outlier: UMAP links every text to its nearest neighbours, so a lone text about something
   else can be glued onto the nearest topic. Then an outlier joins the nearest topic when its
   similarity to that centroid is at least 0.6: HDBSCAN's noise is mostly the fringe of real
   topics, and in the full space most of it sits clearly close to one topic.
6. **Keywords** by class-based TF-IDF (c-TF-IDF, as in BERTopic): the texts of each topic
   (outliers as one more class) are joined into one class document, and word w in class c
   scores ``tf(w, c) * log(1 + A / f(w))``, with ``tf`` the word's count in the class divided
   by the class's word count, ``f(w)`` the word's count over all classes and ``A`` the mean
   word count of a class. English stop words and tokens without a letter are dropped. Chinese
   and Japanese have no spaces between words, so a run of Han / kana characters (a clause) is
   taken as its overlapping character bigrams (送餐很快 -> 送餐 餐很 很快), as for full-text search.
7. **Representatives**: the three texts of a topic closest (cosine) to its centroid.
8. **Names** (optional): SmolLM2 reads a topic's representative texts and writes a short
   name, greedily, after two worked examples given as earlier chat turns (a 135M model follows
   a pattern better than a rule). An answer that is no name (an apology, a sentence) is
   dropped; such topics, and all without this step, are named by their first three keywords.

Topics are numbered by size, largest first. ``map_png`` draws a 2-D UMAP map coloured by topic.
Texts may be any sequence of str (a list, a pandas Series with any index, a numpy array, a
generator); None and NaN (empty cells) are empty texts. Empty texts (blank cells of a ticket
export) are left out of every step: all alike, they would otherwise make the largest "topic".
They get topic -1, named "empty", and are counted apart from the outliers; shares are of the
texts with content.
The defaults are generic rules rather than values fitted to one label set: UMAP's own
neighbourhood, a minimum topic size relative to the number of texts, and two cosine-similarity
thresholds on MiniLM vectors (0.9: the same issue; 0.6: clearly about it; 0.3: clearly not). They were
checked, with three seeds, on banking77 against its intent labels.
Tests: tests/apps/test_topics.py; figures against BERTopic's defaults: bench/topics.py.
"""

import io
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp

from llmlab.apps.inputs import text_list
from llmlab.apps.search import CJK
from llmlab.errors import LlmlabError
from llmlab.plain import plain

N_COMPONENTS = 5  # UMAP dimensions the clustering sees
N_NEIGHBORS = 15  # UMAP's default neighbourhood
MERGE_SIMILARITY = 0.9  # topics whose centroids are at least this similar are one topic
OUTLIER_SIMILARITY = 0.6  # an outlier this similar to a topic's centroid joins it
STRAY_SIMILARITY = 0.3  # a member less similar than this to its own topic's centroid is an outlier
DOMINANT_SHARE = 0.5  # a cluster holding more than this share of the texts (beside others) is clustered again
N_KEYWORDS = 10
N_REPRESENTATIVES = 3


@dataclass
class Topic:
    id: int  # 0 = the largest
    name: str
    size: int
    share: float  # of the texts with content, outliers included
    keywords: list[str]
    representatives: list[str]  # the texts closest to the topic's centroid, closest first
    representative_rows: list[int]  # their positions in the input
    named_by: str = "keywords"  # "keywords": its first three keywords; "model": SmolLM2 (label_with_llm)


@dataclass
class Topics:
    topics: list[Topic]  # largest first
    assignments: list[int]  # topic id per text, -1 for an outlier or an empty text
    outliers: int  # texts with content in no topic
    embeddings: np.ndarray  # (N, dim) normalised sentence vectors (zeros for empty texts), for maps and further work
    details: dict = field(default_factory=dict)  # the parameters used and the steps' counts
    empty_rows: list[int] = field(default_factory=list)  # positions of the empty (blank) texts, left out

    @property
    def names(self) -> list[str]:
        """The topic name of each text ("outlier" or "empty" for -1)."""
        by_id = {t.id: t.name for t in self.topics}
        names = [by_id.get(a, "outlier") for a in self.assignments]
        for i in self.empty_rows:
            names[i] = "empty"
        return names

    @property
    def with_content(self) -> int:
        """How many texts were not empty (the base of every share)."""
        return len(self.assignments) - len(self.empty_rows)

    def to_dict(self, embeddings: bool = False) -> dict:
        """The result as plain JSON values (what `llmlab topics --format json` prints): the topics,
        largest first, and every text's topic id in input order (-1: an outlier or an empty text).
        With ``embeddings``, the sentence vectors too (384 numbers per text)."""
        doc = {"texts": len(self.assignments), "empty_texts": len(self.empty_rows), "outliers": self.outliers,
               "outlier_share": self.outliers / max(self.with_content, 1),
               "topics": [asdict(t) for t in self.topics], "assignments": self.assignments,
               "empty_rows": self.empty_rows, "details": self.details}
        if embeddings:
            doc["embeddings"] = self.embeddings
        return plain(doc)


def topics(
    texts,
    min_topic_size: int | None = None,
    label_with_llm: bool = False,
    seed: int = 0,
    encoder=None,
    decoder=None,
    embeddings=None,
    progress: bool = False,
) -> Topics:
    """Find the topics of ``texts`` (any sequence of str; None and NaN are empty texts).

    ``min_topic_size`` defaults to ``max(10, len(texts) // 200)``. ``embeddings`` (N, dim)
    skips the embedding step (e.g. vectors computed once for several runs); ``encoder`` /
    ``decoder`` default to the bundled MiniLM / SmolLM2 (int4, only with ``label_with_llm``).
    """
    texts = text_list(texts)
    n = len(texts)
    if n == 0:
        raise LlmlabError("no texts to find topics in")
    keep = [i for i, t in enumerate(texts) if t.strip()]
    if len(keep) < n:  # blank texts are left out; the rest is found as usual, then put back in place
        if not keep:
            raise LlmlabError(f"all {n} texts are empty")
        if embeddings is not None:
            embeddings = np.asarray(embeddings)
            if embeddings.ndim != 2 or len(embeddings) != n:  # one row per text, empty ones included
                raise LlmlabError(f"embeddings must be ({n}, dim), not {embeddings.shape}")
            embeddings = embeddings[keep]
        try:
            found = topics([texts[i] for i in keep], min_topic_size, label_with_llm, seed, encoder, decoder,
                           embeddings, progress)
        except LlmlabError as e:
            raise LlmlabError(f"{e} ({n - len(keep)} of {n} texts are empty)") from None
        return _put_back(found, keep, n)
    size = max(10, n // 200) if min_topic_size is None else int(min_topic_size)
    if size < 2:
        raise LlmlabError(f"the minimum topic size must be at least 2, not {size}")
    if n < 2 * size:
        raise LlmlabError(f"{n} texts are too few for topics of at least {size} texts: "
                          f"give at least {2 * size} texts or a smaller minimum topic size")
    x = _embed(texts, encoder, embeddings, progress)
    if progress:  # no bar to show for these steps: say what runs (the first UMAP in a process compiles)
        import sys

        print(f"topics: reducing {n:,} vectors to {N_COMPONENTS} dimensions (UMAP), then clustering (HDBSCAN)",
              file=sys.stderr)
    reduced = reduce(x, seed)
    labels = cluster(reduced, size)
    single = False
    if labels.max() < 0:  # no cluster at all: the texts may all be about one thing
        one = cluster(reduced, size, allow_single_cluster=True)
        if (one >= 0).any():  # kept if most texts are in it or clearly about it (as outliers are reassigned)
            centre = x[one >= 0].mean(axis=0)
            near = x @ (centre / max(float(np.linalg.norm(centre)), 1e-12)) >= OUTLIER_SIMILARITY
            single = bool(((one >= 0) | near).mean() >= 0.5)  # not a clump in noise
        labels = one if single else labels
    clustered, labels = labels, split_dominant(reduced, labels, size)
    noise = lambda: int((labels == -1).sum())  # noqa: E731
    counts = {"clusters_found": int(labels.max()) + 1, "single_cluster": single, "split": labels is not clustered,
              "hdbscan_outliers": noise()}
    labels = merge_similar(x, labels, MERGE_SIMILARITY)
    counts["merged"] = counts["clusters_found"] - (int(labels.max()) + 1)
    labels = evict_strays(x, labels, STRAY_SIMILARITY)
    counts["strays"] = noise() - counts["hdbscan_outliers"]
    before = noise()
    labels = _by_size(reassign_outliers(x, labels, OUTLIER_SIMILARITY))
    counts["outliers_reassigned"] = before - noise()
    details = {"min_topic_size": size, "min_samples": max(1, size // 2), "n_components": N_COMPONENTS,
               "n_neighbors": min(N_NEIGHBORS, n - 1), "seed": seed, **counts}
    result = _describe(texts, x, labels, details)
    if label_with_llm and result.topics:
        for topic, name in zip(result.topics, llm_names(result.topics, decoder, progress)):
            if name is not None:  # else the keyword name stays
                topic.name, topic.named_by = name, "model"
    return result


def _put_back(found: Topics, keep: list[int], n: int) -> Topics:
    """``found`` for the texts at positions ``keep`` of ``n``, as the result for all ``n``."""
    assignments = [-1] * n
    for i, a in zip(keep, found.assignments):
        assignments[i] = a
    x = np.zeros((n, found.embeddings.shape[1]), dtype=found.embeddings.dtype)
    x[keep] = found.embeddings
    for t in found.topics:
        t.representative_rows = [keep[j] for j in t.representative_rows]
    kept = set(keep)
    empty = [i for i in range(n) if i not in kept]
    return Topics(found.topics, assignments, found.outliers, x, found.details | {"empty_texts": len(empty)}, empty)


# --- the steps -------------------------------------------------------------------------------
def _embed(texts, encoder, embeddings, progress) -> np.ndarray:
    if embeddings is None:
        if encoder is None:
            from llmlab.apps.bundled import sentence_encoder

            encoder = sentence_encoder()
        embeddings = encoder.encode(list(texts), progress=progress)
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(texts):
        raise LlmlabError(f"embeddings must be ({len(texts)}, dim), not {x.shape}")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def reduce(x: np.ndarray, seed: int = 0, n_components: int = N_COMPONENTS, min_dist: float = 0.0) -> np.ndarray:
    """UMAP of the (N, dim) vectors to (N, n_components), cosine metric, seeded."""
    import warnings

    from umap import UMAP

    n_neighbors = min(N_NEIGHBORS, len(x) - 1)
    umap = UMAP(n_neighbors=n_neighbors, n_components=n_components, min_dist=min_dist, metric="cosine",
                random_state=seed, n_jobs=1)
    with warnings.catch_warnings():  # small inputs: "n_neighbors is larger than the dataset" etc.
        warnings.simplefilter("ignore")
        return umap.fit_transform(x)


def cluster(reduced: np.ndarray, min_topic_size: int, allow_single_cluster: bool = False) -> np.ndarray:
    """HDBSCAN labels (N,), -1 for noise. ``allow_single_cluster``: all texts may be one cluster."""
    from sklearn.cluster import HDBSCAN

    hdb = HDBSCAN(min_cluster_size=min_topic_size, min_samples=max(1, min_topic_size // 2),
                  cluster_selection_method="eom", allow_single_cluster=allow_single_cluster, copy=True)
    return hdb.fit_predict(reduced).astype(np.int64)


def split_dominant(reduced: np.ndarray, labels: np.ndarray, min_topic_size: int,
                   share: float = DOMINANT_SHARE) -> np.ndarray:
    """``labels`` with a cluster that holds more than ``share`` of the texts, beside other clusters,
    replaced by the clusters HDBSCAN finds among its members alone (their noise: outliers), when
    it finds several; else ``labels`` itself."""
    if labels.max() < 1:  # no cluster, or one (texts all about one thing)
        return labels
    sizes = np.bincount(labels[labels >= 0])
    big = int(sizes.argmax())
    if sizes[big] <= share * len(labels):
        return labels
    inside = np.flatnonzero(labels == big)
    parts = cluster(reduced[inside], min_topic_size)
    if parts.max() < 1:
        return labels
    out = labels.copy()
    out[inside] = np.where(parts >= 0, parts + int(labels.max()) + 1, -1)
    return _compact(out)


def centroids(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(k, dim) unit-length mean vector of each topic 0..k-1 (outliers left out)."""
    k = int(labels.max()) + 1
    inside = labels >= 0
    member = sp.csr_matrix((np.ones(inside.sum()), (labels[inside], np.nonzero(inside)[0])), shape=(k, len(x)))
    c = np.asarray(member @ x)  # (k, dim) sums
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)


def merge_similar(x: np.ndarray, labels: np.ndarray, similarity: float) -> np.ndarray:
    """Join topics whose centroids' cosine similarity is >= ``similarity`` (average linkage)."""
    if labels.max() < 1:
        return labels
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    tree = linkage(pdist(centroids(x, labels), "cosine"), "average")
    group = fcluster(tree, 1 - similarity, "distance") - 1  # (k,) new id of each topic
    _, group = np.unique(group, return_inverse=True)
    return np.where(labels >= 0, group[np.maximum(labels, 0)], -1)


def evict_strays(x: np.ndarray, labels: np.ndarray, similarity: float) -> np.ndarray:
    """Members whose cosine similarity to their own topic's centroid is below ``similarity`` become outliers."""
    if labels.max() < 0:
        return labels
    own = np.einsum("nd,nd->n", x, centroids(x, labels)[np.maximum(labels, 0)])  # (N,)
    return _compact(np.where((labels >= 0) & (own < similarity), -1, labels))


def _compact(labels: np.ndarray) -> np.ndarray:
    """Topic ids 0..k-1 without gaps (a topic may have lost all its members)."""
    ids, inverse = np.unique(labels, return_inverse=True)
    start = int(ids[0] == -1)  # -1 sorts first and stays -1
    return np.where(labels >= 0, inverse - start, -1)


def reassign_outliers(x: np.ndarray, labels: np.ndarray, similarity: float) -> np.ndarray:
    """Outliers join their nearest topic centroid when the cosine similarity is >= ``similarity``."""
    if labels.max() < 0:
        return labels
    sims = x @ centroids(x, labels).T  # (N, k)
    near = sims.argmax(axis=1)
    join = (labels == -1) & (sims.max(axis=1) >= similarity)
    return np.where(join, near, labels)


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber topics 0.. by size, largest first (ties: the earlier id first)."""
    if labels.max() < 0:
        return labels
    sizes = np.bincount(labels[labels >= 0])
    order = np.argsort(-sizes, kind="stable")  # old ids, largest first
    new = np.empty_like(order)
    new[order] = np.arange(len(order))
    return np.where(labels >= 0, new[np.maximum(labels, 0)], -1)


# --- describing the topics ---------------------------------------------------------------------
def class_tfidf(counts: sp.spmatrix) -> np.ndarray:
    """c-TF-IDF of a (classes, words) count matrix: ``tf(w, c) * log(1 + A / f(w))``.

    ``tf`` is each count over its class's total, ``f(w)`` the word's total over all classes,
    ``A`` the mean total of a class. (BERTopic's ClassTfidfTransformer rounds ``A`` down to an
    integer; here it is the exact mean.)"""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    per_class = np.asarray(counts.sum(axis=1)).ravel()  # (classes,)
    per_word = np.asarray(counts.sum(axis=0)).ravel()  # (words,)
    idf = np.log(1 + per_class.mean() / np.maximum(per_word, 1e-12))
    tf = sp.diags(1 / np.where(per_class > 0, per_class, 1)) @ counts
    return np.asarray((tf @ sp.diags(idf)).todense())


def keywords(texts: list[str], labels: np.ndarray, n: int = N_KEYWORDS) -> list[list[str]]:
    """The ``n`` top c-TF-IDF words of each topic 0..k-1 (outliers are a class of their own) that
    at least two of the topic's texts use."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from llmlab.embed import BagOfWords

    k = int(labels.max()) + 1
    if k == 0:
        return []
    texts = [cjk_bigrams(t) for t in texts]
    bow = BagOfWords(tfidf=False, norm=None).fit(texts)
    terms = np.array(sorted(bow.vocabulary, key=bow.vocabulary.get))
    keep = np.array([_is_keyword(t, ENGLISH_STOP_WORDS) for t in terms], dtype=bool)
    counts = bow.transform(texts)[:, keep]  # (N, words)
    terms = terms[keep]
    cls = np.where(labels >= 0, labels, k)  # outliers: class k
    member = sp.csr_matrix((np.ones(len(cls)), (cls, np.arange(len(cls)))), shape=(k + 1, len(cls)))
    scores = class_tfidf(member @ counts)[:k]  # (k, words)
    # a keyword is said by at least two of the topic's texts: one text's typo or name ("knwo", "anna")
    # says nothing about the topic, however rare it is elsewhere
    texts_with = (member @ (counts > 0).astype(np.float64))[:k]
    if sp.issparse(texts_with):
        texts_with = texts_with.toarray()
    sizes = np.asarray(member.sum(axis=1)).ravel()[:k]
    scores = np.where((texts_with >= 2) | (sizes[:, None] < 2), scores, 0.0)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    return [[str(terms[j]) for j in row if scores[i, j] > 0] for i, row in enumerate(top)]


def cjk_bigrams(text: str) -> str:
    """The text with every run of Han / kana characters as its overlapping bigrams, apart
    (外卖送餐很快 -> 外卖 卖送 送餐 餐很 很快); a run of one character stays itself. Other text is unchanged."""

    def pairs(m: re.Match) -> str:
        run = m.group(0)
        return " " + " ".join(run[i:i + 2] for i in range(max(1, len(run) - 1))) + " "

    return CJK.sub(pairs, text)


def _is_keyword(term: str, stop_words) -> bool:
    """A word with a letter that is not a stop word, nor a stop word's contraction ("wasn't")."""
    base = re.sub(r"(n't|'\w*)$", "", term)  # wasn't -> was, i'm -> i, can't -> ca
    return len(term) > 1 and bool(re.search(r"[^\W\d_]", term)) and base not in stop_words and base not in ("ca", "wo")


def representatives(x: np.ndarray, labels: np.ndarray, n: int = N_REPRESENTATIVES) -> list[list[int]]:
    """Positions of the ``n`` members of each topic closest to its centroid, closest first."""
    k = int(labels.max()) + 1
    if k == 0:
        return []
    sims = np.einsum("nd,nd->n", x, centroids(x, labels)[np.maximum(labels, 0)])  # (N,) to own centroid
    order = np.lexsort((-sims, labels))  # by topic, then most similar first
    order = order[labels[order] >= 0]
    starts = np.searchsorted(labels[order], np.arange(k))
    return [order[s:s + n][labels[order[s:s + n]] == t].tolist() for t, s in enumerate(starts)]


def _describe(texts, x, labels, details) -> Topics:
    words = keywords(texts, labels)
    reps = representatives(x, labels)
    sizes = np.bincount(labels[labels >= 0], minlength=int(labels.max()) + 1)
    found = [Topic(id=i, name=", ".join(words[i][:3]) or f"topic {i}", size=int(sizes[i]),
                   share=float(sizes[i] / len(texts)), keywords=words[i],
                   representatives=[texts[j] for j in reps[i]], representative_rows=reps[i])
             for i in range(len(sizes))]
    return Topics(found, labels.tolist(), int((labels == -1).sum()), x, details)


# --- names by SmolLM2 ---------------------------------------------------------------------------
NAME_QUESTION = "Customer messages:\n{examples}\n\nName their common issue in 2 to 5 words."
NAME_SHOTS = [  # two worked examples as earlier turns: a small model follows a pattern better than a rule
    (["When will my new card arrive?", "I ordered a card two weeks ago and it has not come.",
      "Still waiting for my card to arrive."], "Card not arrived"),
    (["The app crashes when I open it.", "Since the update the app closes itself.",
      "App keeps crashing on my phone."], "App crashes after update"),
]


def llm_names(found: list[Topic], decoder=None, progress: bool = False) -> list[str]:
    """A short name per topic from SmolLM2 reading its representative texts (greedy, few-shot), or
    None where it gave none: an answer that is not a name, holds a number, is cut by the 12-token
    limit, or repeats a larger topic's name with nothing to tell them apart."""
    from tqdm import tqdm

    from llmlab.generate import ChatTemplate, GenerationConfig, PromptCache, complete
    from llmlab.nn.quantized import float_weights

    if decoder is None:
        from llmlab.apps.bundled import chat_decoder

        decoder = chat_decoder()
    tok = decoder.tokenizer
    template = ChatTemplate(decoder.chat_template or "", tok.bos_token or "", tok.eos_token or "")
    config = GenerationConfig(max_new_tokens=12, temperature=0.0, stop=["\n"])

    def ask(texts: list[str]) -> dict:
        # order numbers, account ids, amounts: a name should not copy them (and a 12-token name cuts them)
        examples = "\n".join(f"- {_NUMBER.sub('#', ' '.join(t.split())[:200])}" for t in texts)
        return {"role": "user", "content": NAME_QUESTION.format(examples=examples)}

    shots = [turn for texts, name in NAME_SHOTS for turn in (ask(texts), {"role": "assistant", "content": name})]
    prompts = [tok.encode(template.render([*shots, ask(topic.representatives)])) for topic in found]
    names: list[str | None] = []
    with float_weights(decoder.model):  # many short prompts: the int4 weights dequantized once, not per prompt
        # every prompt begins with the same instructions and examples: read once, not once per topic
        shared = PromptCache.common(decoder.model, prompts, config.max_new_tokens)
        for prompt in tqdm(prompts, desc="naming", unit="topic", disable=not progress):
            answer = complete(decoder.model, tok, prompt, config, prefix=shared)
            names.append(None if answer.finish_reason == "length" else _clean_name(answer.text) or None)
    return _distinct(names, found)


_NUMBER = re.compile(r"\d[\d,.\-/]{2,}")  # 3 or more characters of a number: 2024, 1,500.00, 12/03


def _distinct(names: list[str | None], found: list[Topic]) -> list[str | None]:
    """``names`` with a name that an earlier (larger) topic already has made apart by the topic's
    first keyword that is not in it ("Card not arrived (delivery)"); None where the model gave no
    name, or only a name already taken."""
    taken: set[str] = set()
    out: list[str | None] = []
    for name, topic in zip(names, found):
        if name is not None and name.lower() in taken:
            extra = next((w for w in topic.keywords if w not in name.lower()), None)
            name = f"{name} ({extra})" if extra else None
        if name is not None and name.lower() in taken:
            name = None
        if name is not None:
            taken.add(name.lower())
        out.append(name)
    return out


def _clean_name(text: str) -> str:
    """The model's answer as a one-line name (no quotes, label prefix or full stop), or "" when
    it is not a name: an apology or a sentence about itself ("I'm sorry ..."), or over 6 words."""
    name = " ".join(text.split())
    name = re.sub(r"^(name|issue|topic)\s*:\s*", "", name, flags=re.IGNORECASE)
    name = name.strip(" \"'*`").rstrip(".,;:").strip()
    if re.match(r"(i|i'm|i am|sorry|as an)\b", name, flags=re.IGNORECASE) or len(name.split()) > 6:
        return ""
    if "#" in name or re.search(r"\d{3}", name):  # a masked or copied number: an id, not an issue
        return ""
    return name


# --- files ----------------------------------------------------------------------------------------
def map_png(result: Topics, seed: int = 0, max_labels: int = 100) -> bytes:
    """A 2-D UMAP map of the texts coloured by topic (outliers grey), each topic's id at its middle
    (the 30 largest in bold), as PNG bytes. 20 colours repeat; the ids tell topics apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patheffects as effects
    import matplotlib.pyplot as plt

    content = np.ones(len(result.assignments), dtype=bool)
    content[result.empty_rows] = False
    xy = reduce(result.embeddings[content], seed, n_components=2, min_dist=0.1)  # (N, 2)
    labels = np.asarray(result.assignments)[content]
    fig, ax = plt.subplots(figsize=(9, 7))
    out = labels == -1
    ax.scatter(xy[out, 0], xy[out, 1], s=4, c="lightgrey", label=f"outliers ({out.sum()})")
    colours = plt.get_cmap("tab20")(labels[~out] % 20)
    ax.scatter(xy[~out, 0], xy[~out, 1], s=6, c=colours)
    for rank, t in enumerate(result.topics[:max_labels]):  # ids, outlined in white to read over the dots
        cx, cy = np.median(xy[labels == t.id], axis=0)
        ax.annotate(str(t.id), (cx, cy), fontsize=8 if rank < 30 else 6, weight="bold" if rank < 30 else "normal",
                    ha="center", va="center", path_effects=[effects.withStroke(linewidth=2, foreground="white")])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{len(result.topics)} topics, {result.outliers} outliers ({len(labels)} texts"
                 + (f", {len(result.empty_rows)} empty ones left out" if result.empty_rows else "")
                 + "); numbers: topic ids as in report.md", fontsize=10)
    if out.any():
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    return png.getvalue()


def topic_rows(result: Topics) -> tuple[list[str], list[dict]]:
    """(header, rows) of topics.csv: one row per topic, then the outliers."""
    header = ["topic", "name", "named_by", "size", "share", "keywords"] + [f"representative_{i + 1}"
                                                                           for i in range(N_REPRESENTATIVES)]
    rows = [{"topic": t.id, "name": t.name, "named_by": t.named_by, "size": t.size, "share": f"{t.share:.4f}",
             "keywords": " ".join(t.keywords),
             **{f"representative_{i + 1}": r for i, r in enumerate(t.representatives)}}
            for t in result.topics]
    n = result.with_content
    rows.append({"topic": -1, "name": "outlier", "size": result.outliers, "share": f"{result.outliers / n:.4f}"})
    if result.empty_rows:
        rows.append({"topic": -1, "name": "empty", "size": len(result.empty_rows), "share": ""})
    return header, rows


def report_markdown(result: Topics, source: str, png_name: str) -> str:
    """report.md: the summary, a table of the topics, representatives, the map."""
    n = result.with_content
    d = result.details
    empty = f" ({len(result.empty_rows)} empty texts left out)" if result.empty_rows else ""
    by_model = sum(t.named_by == "model" for t in result.topics)
    single = " (none at first: run again allowing one cluster of all texts)" if d.get("single_cluster") else ""
    naming = (f"names: {by_model} written by SmolLM2 from each topic's representative texts, the others (in "
              "italics) its first three keywords" if by_model else "names: each topic's first three keywords")
    lines = [f"# Topics in {source}", "",
             f"{n} texts{empty}, {len(result.topics)} topics; {result.outliers} texts "
             f"({result.outliers / n:.1%}) fit no topic (outliers).", "",
             "Texts were grouped by meaning (MiniLM sentence embeddings, reduced with UMAP, clustered by "
             "density with HDBSCAN). Keywords are the words most particular to a topic (class-based TF-IDF) "
             f"that at least two of its texts use; {naming}. The representative texts are the topic's "
             "closest to its centre.", "",
             f"Details: minimum topic size {d['min_topic_size']}; {d['clusters_found']} clusters found{single}, "
             f"{d['merged']} merged as near-duplicates, {d['strays']} texts far from their topic made outliers, "
             f"{d['outliers_reassigned']} outliers close enough to a topic put in it; "
             f"seed {d['seed']}.", "", f"![map of the texts, coloured by topic]({png_name})", "",
             "| topic | name | size | share | keywords |", "|---:|---|---:|---:|---|"]
    cell = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    shown = lambda t: cell(t.name) if t.named_by == "model" or not by_model else f"*{cell(t.name)}*"  # noqa: E731
    lines += [f"| {t.id} | {shown(t)} | {t.size} | {t.share:.1%} | {cell(', '.join(t.keywords))} |"
              for t in result.topics]
    lines += ["", "## Representative texts", ""]
    for t in result.topics:
        lines += [f"**{t.id}. {shown(t)}** ({t.size})", ""]
        lines += [f"- {cell(' '.join(r.split()))}" for r in t.representatives] + [""]
    return "\n".join(lines)
