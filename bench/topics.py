"""Topic benchmark on banking77, side by side with BERTopic in one run.

3,000 queries, a seeded random sample (numpy default_rng(0)) of banking77's train split, are
embedded once with our MiniLM; both pipelines get the same vectors:
- peer: BERTopic with its default settings (UMAP 5-D + HDBSCAN min_cluster_size 10 + c-TF-IDF),
  its UMAP given a ``random_state`` so that the run repeats (UMAP's settings otherwise exactly
  BERTopic's defaults);
- llmlab: ``llmlab.apps.topics`` with its defaults.
Scores against the 77 intent labels: NMI and ARI (scikit-learn), outliers counted as one more
cluster (-1) for both; also the outlier share, the number of topics and the wall time of the
topic step (embedding excluded; UMAP's numba compilation is done once before either runs).

    .venv/bin/python bench/topics.py [--data ../shared/data] [--n 3000] [--seeds 0 1 2] [--json out.json]
"""

import os
import sys

# bench/tokenize.py shares its name with the standard library's `tokenize`: keep this folder off the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def sample(path: Path, n: int) -> tuple[list[str], list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    idx = np.sort(np.random.default_rng(0).choice(len(rows), size=min(n, len(rows)), replace=False))
    return [rows[i]["text"] for i in idx], [rows[i]["category"] for i in idx]


def scores(truth: list[str], assigned, seconds: float) -> dict:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    a = np.asarray(assigned)
    return {"nmi": normalized_mutual_info_score(truth, a), "ari": adjusted_rand_score(truth, a),
            "outliers": float((a == -1).mean()), "topics": len(set(a.tolist()) - {-1}), "seconds": seconds}


def peer(texts, x, seed: int) -> tuple[list[int], float]:
    from bertopic import BERTopic
    from umap import UMAP

    umap = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", low_memory=False,
                random_state=seed)  # BERTopic's default UMAP, seeded
    start = time.perf_counter()
    assigned, _ = BERTopic(umap_model=umap).fit_transform(texts, embeddings=x)
    return assigned, time.perf_counter() - start


def ours(texts, x, seed: int) -> tuple[list[int], float]:
    from llmlab.apps.topics import topics

    start = time.perf_counter()
    result = topics(texts, embeddings=x, seed=seed)
    return result.assignments, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description="topics vs BERTopic on banking77")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--n", type=int, default=3000, help="queries sampled from train.csv (default 3000)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="UMAP seeds, one row each (default 0)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    path = args.data / "banking77" / "train.csv"
    if not path.is_file():
        raise SystemExit(f"{path} not found; the topic benchmark needs ../shared/data/banking77")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    from llmlab.apps.topics import reduce
    from llmlab.weights.registry import load_encoder

    texts, truth = sample(path, args.n)
    start = time.perf_counter()
    x = load_encoder("minilm").encode(texts).numpy()
    embed_s = time.perf_counter() - start
    reduce(x[:200])  # compile UMAP's numba code once, outside both timings
    rows = []
    for seed in args.seeds:
        for name, run in (("peer: BERTopic defaults", peer), ("llmlab topics", ours)):
            assigned, seconds = run(texts, x, seed)
            rows.append({"pipeline": name, "seed": seed, **scores(truth, assigned, seconds)})

    print(f"\n## Topics, banking77 ({len(texts)} train queries sampled with seed 0, {len(set(truth))} intents; "
          f"{os.cpu_count()} cores, commit {commit})\n")
    print("| pipeline | seed | NMI | ARI | outliers | topics | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['pipeline']} | {r['seed']} | {r['nmi']:.4f} | {r['ari']:.4f} | {r['outliers']:.1%} | "
              f"{r['topics']} | {r['seconds']:.1f} |")
    print(f"\nMiniLM embeddings (shared by both): {embed_s:.1f} s\n")
    if args.json:
        args.json.write_text(json.dumps({"commit": commit, "n": len(texts), "embed_s": embed_s, "rows": rows},
                                        indent=1))


if __name__ == "__main__":
    main()
