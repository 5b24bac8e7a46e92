"""word2vec training, side by side with gensim in one run: throughput, time, memory, quality.

Both trainers read the same sentences: llmlab's reader (`llmlab.embed.word2vec.iter_sentences`:
lower-cased letter words, a paragraph of a .txt file or a line of Brown with its tags stripped is
one sentence) streams the corpus from disk: for gensim on every epoch, as a restartable iterable;
for us in the vocabulary pass and the first epoch, whose ids the later epochs reuse (a corpus of
up to 100M words). Same hyperparameters: skip-gram,
dim 100, window 5, negative 5, min_count 5, sample 1e-3, 5 epochs, seed 1, and the same thread
count (1, then 2). Each trainer runs in its own subprocess, which reports its peak RSS (ru_maxrss).
Seeds move the quality figures by about a point, so each configuration is trained with several
seeds (``--seeds``, default 1,2,3; the same seeds for both) and the table shows the means, with
each seed's figures below it.

- effective words/s: words trained on (left after min_count and sub-sampling, summed over the
  epochs: gensim's `train()` return value, our `stats["effective_words"]`) divided by the time of
  the training passes (the vocabulary pass excluded, for both);
- wall s: vocabulary pass + training;
- quality: analogy accuracy (3CosAdd, questions-words.txt, top 30,000 words, questions with an
  unknown word skipped), Spearman on WordSim-353 and SimLex-999, all computed by
  `llmlab.embed.word2vec` on each trainer's vectors (tests/embed/test_word2vec.py proves these
  functions equal gensim's `evaluate_word_analogies` / `evaluate_word_pairs`).

    .venv/bin/python bench/word2vec.py [--data ../shared/data] [--threads 1,2] [--seeds 1,2,3] [--quick]
                                       [--json out.json]

``--quick`` trains on the State of the Union and inaugural parts only (about 0.5 M words).
"""

import os
import sys

# bench/tokenize.py shadows the standard library's `tokenize` (imported by logging via linecache);
# keep this folder off the import path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SETTINGS = dict(dim=100, window=5, negative=5, min_count=5, sample=1e-3, epochs=5)


def corpus_files(data: Path, quick: bool) -> list[Path]:
    root = data / "corpus_en"
    parts = ["state_union", "inaugural"] if quick else ["gutenberg", "state_union", "inaugural"]
    files = [f for part in parts for f in sorted((root / part).glob("*.txt"))]
    return files if quick else files + [root / "brown.zip"]


class Sentences:
    """A restartable iterable over llmlab's sentences, for gensim."""

    def __init__(self, files):
        self.files = files

    def __iter__(self):
        from llmlab.embed.word2vec import iter_sentences

        return iter_sentences(self.files)


def train_ours(files, threads, seed, out: Path) -> dict:
    from llmlab.embed.word2vec import Word2Vec, Word2VecConfig

    start = time.perf_counter()
    model = Word2Vec(Word2VecConfig(sg=True, threads=threads, seed=seed, **SETTINGS)).build_vocab(files)
    vocab_s = time.perf_counter() - start
    stats = model.train(files, progress=False)
    model.wv.save(out, binary=True)
    return {"effective_words": stats["effective_words"], "train_s": stats["seconds"], "vocab_s": vocab_s,
            "vocab_size": len(model.words), "corpus_words": model.raw_words}


def train_gensim(files, threads, seed, out: Path) -> dict:
    from gensim.models import Word2Vec

    s = SETTINGS
    model = Word2Vec(vector_size=s["dim"], window=s["window"], negative=s["negative"], min_count=s["min_count"],
                     sample=s["sample"], epochs=s["epochs"], seed=seed, sg=1, hs=0, workers=threads)
    corpus = Sentences(files)
    start = time.perf_counter()
    model.build_vocab(corpus)
    vocab_s = time.perf_counter() - start
    start = time.perf_counter()
    effective, raw = model.train(corpus, total_examples=model.corpus_count, epochs=model.epochs)
    train_s = time.perf_counter() - start
    model.wv.save_word2vec_format(str(out), binary=True)
    return {"effective_words": effective, "train_s": train_s, "vocab_s": vocab_s, "vocab_size": len(model.wv),
            "corpus_words": model.corpus_total_words}


def worker(args) -> None:
    files = [Path(f) for f in json.loads(args.files)]
    stats = (train_ours if args.worker == "llmlab" else train_gensim)(files, args.threads, args.seed, Path(args.out))
    stats["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(stats))


def run_one(trainer: str, files, threads: int, seed: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", trainer, "--threads", str(threads), "--seeds", str(seed),
           "--out", str(out), "--files", json.dumps([str(f) for f in files])]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{trainer} failed:\n{proc.stderr[-3000:]}")
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    stats["process_s"] = time.perf_counter() - start
    return stats


def quality(path: Path, data: Path) -> dict:
    from llmlab.embed.word2vec import KeyedVectors, evaluate_analogies, evaluate_pairs

    kv = KeyedVectors.load(path)
    ev = data / "word_eval"
    a = evaluate_analogies(kv, ev / "questions-words.txt", restrict_vocab=30_000)
    ws = evaluate_pairs(kv, ev / "wordsim353.tsv")
    sl = evaluate_pairs(kv, ev / "simlex999.txt")
    return {"analogy": 100 * a["accuracy"], "analogy_counted": a["total"], "wordsim353": 100 * ws["spearman"],
            "wordsim353_oov": ws["oov_pairs"], "simlex999": 100 * sl["spearman"], "simlex999_oov": sl["oov_pairs"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--seeds", default="1,2,3", help="seeds trained for each trainer and thread count")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", type=Path)
    p.add_argument("--worker", choices=["llmlab", "gensim"], help=argparse.SUPPRESS)
    p.add_argument("--files", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.threads, args.seed = int(args.threads), int(args.seeds)
        return worker(args)

    import gensim
    import numba

    files = corpus_files(args.data, args.quick)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    print(f"# word2vec: llmlab vs gensim {gensim.__version__}\n")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared; load average at start "
          f"{os.getloadavg()[0]:.1f}), Python {platform.python_version()}, numba {numba.__version__}, "
          f"commit {commit.strip()}")
    print(f"corpus: {len(files)} files of {args.data / 'corpus_en'}{' (--quick)' if args.quick else ''}; "
          f"skip-gram, {', '.join(f'{k} {v}' for k, v in SETTINGS.items())}\n")
    seeds = [int(x) for x in args.seeds.split(",")]
    keys = ("words_per_s", "effective_words", "train_s", "vocab_s", "peak_mb", "analogy", "wordsim353", "simlex999")
    rows, results, seed_rows = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for threads in map(int, args.threads.split(",")):
            pair = {}
            for trainer in ("llmlab", "gensim"):
                runs = []
                for seed in seeds:
                    out = Path(tmp) / f"{trainer}-{threads}-{seed}.bin"
                    stats = run_one(trainer, files, threads, seed, out) | quality(out, args.data)
                    stats |= {"trainer": trainer, "threads": threads, "seed": seed,
                              "words_per_s": stats["effective_words"] / stats["train_s"]}
                    runs.append(stats)
                    results.append(stats)
                pair[trainer] = runs[0] | {k: sum(r[k] for r in runs) / len(runs) for k in keys}
                seed_rows.append(f"| {threads} | {trainer} | " + " | ".join(
                    f"{r['wordsim353']:.1f} / {r['simlex999']:.1f} / {r['analogy']:.1f}%" for r in runs) + " |")
            ours, peer = pair["llmlab"], pair["gensim"]
            for s in (ours, peer):
                rows.append(f"| {threads} | {s['trainer']} | {s['words_per_s']:,.0f} | {s['effective_words']:,.0f} | "
                            f"{s['train_s']:.1f} | {s['vocab_s'] + s['train_s']:.1f} | {s['peak_mb']:.0f} | "
                            f"{s['analogy']:.1f}% | {s['wordsim353'] / 100:.3f} | {s['simlex999'] / 100:.3f} |")
            speed = ours["words_per_s"] / peer["words_per_s"]
            rows.append(f"| {threads} | **llmlab / gensim** | **{speed:.2f}x** | | "
                        f"{ours['train_s'] / peer['train_s']:.2f}x | "
                        f"{(ours['vocab_s'] + ours['train_s']) / (peer['vocab_s'] + peer['train_s']):.2f}x | "
                        f"{ours['peak_mb'] / peer['peak_mb']:.2f}x | {ours['analogy'] - peer['analogy']:+.1f} pt | "
                        f"{ours['wordsim353'] - peer['wordsim353']:+.1f} pt | "
                        f"{ours['simlex999'] - peer['simlex999']:+.1f} pt |")
    first, peer_first = results[0], next(r for r in results if r["trainer"] == "gensim")
    print(f"{first['corpus_words']:,} words, {first['vocab_size']:,} kept by min_count (llmlab) / "
          f"{peer_first['vocab_size']:,} (gensim); analogies counted: {first['analogy_counted']:,} of 19,544; "
          f"unknown pairs: WordSim-353 {first['wordsim353_oov']}, SimLex-999 {first['simlex999_oov']}\n")
    print("| threads | trainer | effective words/s | effective words | training s | wall s | peak RSS MB | "
          "analogies (3CosAdd) | WordSim-353 ρ | SimLex-999 ρ |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nmeans over seeds {args.seeds}; each seed's WordSim-353 / SimLex-999 (Spearman x 100) / analogies:\n")
    print("| threads | trainer | " + " | ".join(f"seed {x}" for x in seeds) + " |")
    print("|---|---|" + "---|" * len(seeds))
    print("\n".join(seed_rows))
    print("\nratios: llmlab / gensim (higher words/s is better, lower time and memory are better); "
          "quality: llmlab minus gensim in points (accuracy %, Spearman x 100).")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
