"""App benchmarks on real data, side by side with the peer pipeline in one run.

Classification (`llmlab classify`):
- rotten tomatoes, train -> validation (macro-F1): llmlab embeddings / bag of words /
  both (hybrid) + logistic regression, zero-shot with label descriptions, generative
  (SmolLM2 int4, calibrated label scoring);
  peer: sentence-transformers on the same MiniLM folder + scikit-learn LogisticRegression
  (defaults), and zero-shot with the bare labels "A negative/positive review".
- banking77 (77 intents), a stratified 80/20 split of train.csv (seed 0), accuracy and
  macro-F1: llmlab embeddings / bow / hybrid vs the same peer. With the data set's test split
  (banking77/test.csv beside train.csv, or --banking77-test FILE), trained on all of train.csv and
  scored on it instead.

Search (`llmlab index` / `llmlab search`) on SciFact (BEIR): nDCG@10 and recall@100 over the
809 train queries for dense, BM25 and hybrid, and index build time; peer: sentence-transformers
dense on whole abstracts + `rank_bm25` (BM25Okapi on lower-cased words), fused by reciprocal rank.
Chinese BM25, known-item search: 3,000 ChnSentiCorp hotel reviews, each query 6 characters from
inside a review (seed 0), recall@1 / @10; one-character queries (300 characters drawn from the
reviews), the share of the top 10 that holds the character out of min(10, reviews holding it); for
FTS5 over whole Han runs (what unicode61 does alone), over character bigrams, and over bigrams +
single characters with bigram queries (`llmlab.apps.search.bm25_text`, what the index stores).

    .venv/bin/python bench/apps.py [--data ../shared/data] [--json out.json] [--skip-generative]
                                   [--only classify|search] [--banking77-test test.csv]
"""

import os
import sys

# bench/tokenize.py shares its name with the standard library's `tokenize`: keep this folder
# off the import path so `import tokenize` (linecache, torch, ...) finds the real module.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RT_DESCRIPTIONS = {"0": "A negative movie review: the film is bad, boring and disappointing.",
                   "1": "A positive movie review: the film is great, moving and enjoyable."}
RT_QUESTION = "Is the sentiment of this movie review positive or negative?"


def read(path: Path, text: str, label: str) -> tuple[list[str], list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r[text] for r in rows], [r[label] for r in rows]


def peer_scores(train_x, train_y, test_x, test_y, zero_shot_labels=None):
    """sentence-transformers + scikit-learn, default settings."""
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    from llmlab.packages import minilm_dir

    st = SentenceTransformer(str(minilm_dir()), device="cpu")
    start = time.perf_counter()
    xt, xv = st.encode(train_x, batch_size=32), st.encode(test_x, batch_size=32)
    seconds = time.perf_counter() - start
    pred = LogisticRegression(max_iter=1000).fit(xt, train_y).predict(xv)
    out = {"embeddings": {"accuracy": accuracy_score(test_y, pred),
                          "macro_f1": f1_score(test_y, pred, average="macro"), "embed_s": seconds}}
    if zero_shot_labels:
        names = list(zero_shot_labels)
        d = st.encode([zero_shot_labels[n] for n in names], normalize_embeddings=True)
        v = xv / (xv ** 2).sum(1, keepdims=True) ** 0.5
        pred = [names[i] for i in (v @ d.T).argmax(1)]
        out["zero-shot"] = {"accuracy": accuracy_score(test_y, pred),
                            "macro_f1": f1_score(test_y, pred, average="macro")}
    return out


def ours(method, train_x, train_y, test_x, test_y, **kw):
    from llmlab.apps import classify

    start = time.perf_counter()
    r = classify(test_x, method, train_texts=train_x, train_labels=train_y, true_labels=test_y, **kw)
    return {"accuracy": r.metrics.accuracy, "macro_f1": r.metrics.macro_f1, "seconds": time.perf_counter() - start,
            **({"C": r.details["C"]} if "C" in r.details else {})}


def ndcg_recall(ranked: dict[str, list[str]], qrels: dict[str, set[str]]) -> tuple[float, float]:
    """Mean nDCG@10 (binary relevance) and recall@100 over the queries with judgments."""
    import math

    ndcg, recall = [], []
    for q, relevant in qrels.items():
        docs = ranked.get(q, [])
        dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(docs[:10]) if d in relevant)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
        ndcg.append(dcg / ideal)
        recall.append(len(relevant & set(docs[:100])) / len(relevant))
    return sum(ndcg) / len(ndcg), sum(recall) / len(recall)


def search_bench(data: Path) -> dict:
    import re
    import tempfile

    import numpy as np

    from llmlab.apps.search import Index

    folder = data / "retrieval" / "scifact"
    docs = {}
    for part in sorted(folder.glob("corpus.part*.jsonl")):
        for line in part.read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            docs[d["_id"]] = (d.get("title", "") + ". " + d["text"]).strip()
    queries = {json.loads(x)["_id"]: json.loads(x)["text"]
               for x in (folder / "queries_train.jsonl").read_text(encoding="utf-8").splitlines()}
    qrels: dict[str, set[str]] = {}
    for line in (folder / "qrels_train.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        q, d, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(q, set()).add(d)
    qrels = {q: r for q, r in qrels.items() if q in queries}
    out = {"documents": len(docs), "queries": len(qrels)}

    with tempfile.TemporaryDirectory() as tmp:
        index = Index(tmp, create=True)
        start = time.perf_counter()
        report = index.add(list(docs.items()))
        out["llmlab_index_s"], out["chunks"] = time.perf_counter() - start, report.total_chunks
        for mode in ("dense", "bm25", "hybrid"):
            ranked = {}
            for q in qrels:
                seen = []
                for hit in index.search(queries[q], k=300, mode=mode):  # chunks -> documents, best first
                    for path in [hit.path, *(place["path"] for place in hit.also)]:  # a text in several documents
                        if path not in seen:
                            seen.append(path)
                ranked[q] = seen
            out[f"llmlab_{mode}"] = ndcg_recall(ranked, qrels)

    from rank_bm25 import BM25Okapi
    from sentence_transformers import SentenceTransformer

    from llmlab.packages import minilm_dir

    ids = list(docs)
    st = SentenceTransformer(str(minilm_dir()), device="cpu")
    start = time.perf_counter()
    matrix = st.encode([docs[i] for i in ids], batch_size=32, normalize_embeddings=True)
    out["peer_embed_s"] = time.perf_counter() - start
    bm25 = BM25Okapi([re.findall(r"\w+", docs[i].lower()) for i in ids])
    dense, sparse, hybrid = {}, {}, {}
    for q in qrels:
        v = st.encode([queries[q]], normalize_embeddings=True)[0]
        d_rank = [ids[i] for i in np.argsort(-(matrix @ v))[:100]]
        s_rank = [ids[i] for i in np.argsort(-bm25.get_scores(re.findall(r"\w+", queries[q].lower())))[:100]]
        fused: dict[str, float] = {}
        for ranking in (d_rank, s_rank):
            for r, d in enumerate(ranking):
                fused[d] = fused.get(d, 0.0) + 1 / (60 + r + 1)
        dense[q], sparse[q], hybrid[q] = d_rank, s_rank, sorted(fused, key=lambda d: -fused[d])
    out["peer_dense"], out["peer_bm25"], out["peer_hybrid"] = (ndcg_recall(r, qrels) for r in (dense, sparse, hybrid))
    return out


def chinese_known_item(data: Path, n_docs: int = 3000, n_queries: int = 300) -> dict:
    """BM25 inside Chinese text: 6-character known-item queries (recall@1 / @10) and one-character
    queries (share of the top 10 that holds the character, out of what could: min(10, reviews with it))."""
    import random
    import re
    import sqlite3

    from llmlab.apps.search import CJK, bm25_text

    with open(data / "chinese" / "reviews" / "ChnSentiCorp_htl_all.csv", encoding="utf-8", newline="") as f:
        docs = [r["review"] for r in csv.DictReader(f) if len(r.get("review") or "") >= 30][:n_docs]
    rng, queries = random.Random(0), []
    for i in rng.sample(range(len(docs)), n_queries):
        runs = [m.group(0) for m in CJK.finditer(docs[i]) if len(m.group(0)) >= 8]
        if runs:
            run = rng.choice(runs)
            start = rng.randrange(0, len(run) - 5)
            queries.append((run[start:start + 6], i))
    chars = rng.sample(sorted({c for d in docs for m in CJK.finditer(d) for c in m.group(0)}), n_queries)
    out = {"documents": len(docs), "queries": len(queries), "characters": len(chars)}
    analyses = {"whole runs": (lambda t: t, lambda q: q),  # what unicode61 does alone
                "bigrams": (lambda t: bm25_text(t, query=True), lambda q: bm25_text(q, query=True)),
                "bigrams + characters": (bm25_text, lambda q: bm25_text(q, query=True))}  # the index's
    for name, (stored, asked) in analyses.items():
        db = sqlite3.connect(":memory:")
        db.execute("CREATE VIRTUAL TABLE f USING fts5(text, tokenize='porter unicode61')")
        db.executemany("INSERT INTO f (rowid, text) VALUES (?, ?)", ((i, stored(d)) for i, d in enumerate(docs)))

        def top10(q: str, db=db, asked=asked) -> list[int]:
            words = dict.fromkeys(re.findall(r"\w+", asked(q).lower()))
            match = " OR ".join(f'"{w}"' for w in words)
            return [r[0] for r in db.execute("SELECT rowid FROM f WHERE f MATCH ? ORDER BY bm25(f) LIMIT 10", (match,))]

        at1 = at10 = 0
        for q, i in queries:
            top = top10(q)
            at1 += bool(top) and top[0] == i
            at10 += i in top
        filled = [sum(c in docs[i] for i in top10(c)) / min(10, sum(c in d for d in docs)) for c in chars]
        out[name] = (at1 / len(queries), at10 / len(queries), sum(filled) / len(filled))
    return out


def main():
    ap = argparse.ArgumentParser(description="app benchmarks vs the peer pipelines")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--skip-generative", action="store_true", help="skip the slow generative method")
    ap.add_argument("--only", choices=["classify", "search"], help="run one part only")
    ap.add_argument("--banking77-test", type=Path, metavar="CSV",
                    help="banking77's official test split (text,category): train on all of train.csv and score it "
                    "instead of the 80/20 split (default: banking77/test.csv under --data when it is there)")
    args = ap.parse_args()
    if args.banking77_test and not args.banking77_test.is_file():
        raise SystemExit(f"{args.banking77_test}: no such file")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    search = {}
    if args.only != "classify":
        s = search = search_bench(args.data)
        print(f"\n## Search, SciFact ({s['documents']} abstracts, {s['queries']} train queries; commit {commit})\n")
        print("| pipeline | nDCG@10 | recall@100 |")
        print("|---|---:|---:|")
        for who in ("peer", "llmlab"):
            for mode in ("dense", "bm25", "hybrid"):
                ndcg, rec = s[f"{who}_{mode}"]
                print(f"| {who} {mode} | {ndcg:.4f} | {rec:.4f} |")
        print(f"\nllmlab index build: {s['llmlab_index_s']:.1f} s for {s['chunks']} chunks "
              f"(peer embedding time {s['peer_embed_s']:.1f} s)\n")
        z = s["chinese"] = chinese_known_item(args.data)
        print(f"Chinese BM25 ({z['documents']} hotel reviews): known-item recall@1 / @10 ({z['queries']} queries of "
              f"6 characters from inside a review); one-character queries ({z['characters']}): top 10 filled")
        for name in ("whole runs", "bigrams", "bigrams + characters"):
            print(f"  FTS5 over {name}: {z[name][0]:.3f} / {z[name][1]:.3f}; {z[name][2]:.3f}")
        if args.only == "search":
            if args.json:
                args.json.write_text(json.dumps({"commit": commit, "search": s}, indent=1))
            return
    if not (args.data / "rotten_tomatoes").is_dir():
        raise SystemExit(f"data sets not found under {args.data}; the app benchmarks need ../shared/data")
    from sklearn.model_selection import train_test_split

    from llmlab.weights.registry import load_decoder, load_encoder

    encoder = load_encoder("minilm")
    results = {}
    tx, ty = read(args.data / "rotten_tomatoes" / "train.csv", "text", "label")
    vx, vy = read(args.data / "rotten_tomatoes" / "validation.csv", "text", "label")
    bare = {"0": "A negative review", "1": "A positive review"}
    rt = {"peer": peer_scores(tx, ty, vx, vy, bare)}
    for method in ("embeddings", "bow", "hybrid"):
        rt[f"llmlab {method}"] = ours(method, tx, ty, vx, vy, encoder=encoder)
    rt["llmlab zero-shot (bare labels)"] = ours("zero-shot", None, None, vx, vy, labels=bare, encoder=encoder)
    rt["llmlab zero-shot"] = ours("zero-shot", None, None, vx, vy, labels=RT_DESCRIPTIONS, encoder=encoder)
    if not args.skip_generative:
        decoder = load_decoder("smollm2", precision="int4")
        words = [{"0": "negative", "1": "positive"}[y] for y in vy]
        rt["llmlab generative"] = ours("generative", None, None, vx, words, decoder=decoder, question=RT_QUESTION,
                                       labels={"negative": "negative", "positive": "positive"})
    results["rotten_tomatoes"] = rt

    bx, by = read(args.data / "banking77" / "train.csv", "text", "category")
    b77_test = args.banking77_test or args.data / "banking77" / "test.csv"
    if b77_test.is_file():  # the data set's own split: 10,003 training queries, 3,080 test queries
        (btx, bty), (bvx, bvy) = (bx, by), read(b77_test, "text", "category")
        b77_protocol = f"train.csv -> {b77_test.name} (the official split)"
    else:
        btx, bvx, bty, bvy = train_test_split(bx, by, test_size=0.2, stratify=by, random_state=0)
        b77_protocol = "stratified 80/20 split of train.csv, seed 0"
    names = {c: c.replace("_", " ") for c in sorted(set(by))}
    bk = {"peer": peer_scores(btx, bty, bvx, bvy, names)}
    for method in ("embeddings", "bow", "hybrid"):
        bk[f"llmlab {method}"] = ours(method, btx, bty, bvx, bvy, encoder=encoder)
    bk["llmlab zero-shot (label names)"] = ours("zero-shot", None, None, bvx, bvy, labels=names, encoder=encoder)
    results["banking77"] = bk

    print(f"\n## Classification ({os.cpu_count()} cores, commit {commit})\n")
    for data, rows in results.items():
        print(f"{data}: " + ("train -> validation" if data == "rotten_tomatoes" else b77_protocol) + "\n")
        print("| pipeline | accuracy | macro-F1 |")
        print("|---|---:|---:|")
        for name, r in rows.items():
            if name == "peer":
                for method, m in r.items():
                    head = " + sklearn LR" if method == "embeddings" else ""
                    print(f"| peer: sentence-transformers {method}{head} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |")
            else:
                print(f"| {name} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} |")
        print()
    if args.json:
        args.json.write_text(json.dumps({"commit": commit, "banking77_protocol": b77_protocol, **results,
                                         **({"search": search} if search else {})}, indent=1))


if __name__ == "__main__":
    main()
