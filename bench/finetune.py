"""Fine-tuning on real data: LoRA SFT of SmolLM2 and end-to-end MiniLM classifiers.

sft: SmolLM2-135M-Instruct (fp32) with LoRA (r=8, alpha=16, dropout 0.05, q_proj/v_proj, seed 0) on the
  Alpaca-style instruction-data.json (1,100 records, ../shared/data/instructions). The records are
  shuffled (seed 0) and 10% held out; training uses the first --sft-train records of the rest whose
  rendered chat is at most 256 tokens, 1 epoch, batch 8, lr 2e-4. Reported before and after: the
  validation loss on the held-out answers (nats per answer token) and ROUGE-L F1 (bench/inspect.py's
  LCS over lower-cased words) of greedy answers (max 96 new tokens) against the reference outputs
  on the first --sft-eval held-out records, with 5 answers side by side.
  `--only sft --sft-train 300 --sft-eval 30 --threads 1` (2-core CPU, ~5 min in all): validation loss
  1.3292 -> 1.1596 over 110 held-out answers, ROUGE-L 0.4418 -> 0.5297 over 30; 38 steps in 97 s.

classify: all-MiniLM-L6-v2 fine-tuned end to end (mean pooling + linear head, max 128 tokens,
  batch 32, AdamW lr 5e-5 / head 5e-4, warm-up + cosine) on rotten tomatoes train (8,530) ->
  validation (1,066): accuracy and macro-F1, beside the frozen-embeddings + logistic-regression
  figure of `llmlab classify --method embeddings` (bench/apps.py). Optionally banking77: stratified
  80/20 split of train.csv (seed 0), at twice --lr; --ensemble adds `llmlab classify --method
  ensemble` (the mean of the fine-tuned and the hybrid head's probabilities, equal weights).
  With the data set's test split (banking77/test.csv beside train.csv, or --test FILE), the models
  train on all of train.csv and are scored on it instead (--validation still splits train.csv).
  --label-smoothing and --layer-decay are llmlab.train.classify's options; --micro-batches only
  changes speed (length-sorted pieces of each batch: 0.63 -> 0.45 s a step on one thread).

banking77 recipe, chosen with --validation: a stratified 10% of the 80% training part (801 texts;
  models trained on the other 7,201), never the 20% held-out part. Validation accuracy, fine-tuned
  alone / ensemble (body lr = 2 x --lr; one thread, micro-batches 4):
    4 epochs, lr 1e-4                                      0.9276 / 0.9363
    4 epochs, lr 1e-4, label smoothing 0.1                 0.9326 / 0.9376
    6 epochs, lr 1e-4, label smoothing 0.1                 0.9326 / 0.9376
    4 epochs, lr 2e-4, layer decay 0.8                     0.9301 / 0.9376
    4 epochs, lr 2e-4, layer decay 0.8, smoothing 0.1      0.9351 / 0.9401   <- chosen
    the same + body dropout 0.1 (tried after the choice)   0.9376 / 0.9388   (not better: not scored
                                                                              on the held-out part)
  (hybrid head alone 0.9213; 14-28 min a run on the busy 2-core machine). The chosen recipe trained on
  the whole 80%, scored once on the 20%: accuracy 0.9290 (macro-F1 0.9328), ensemble 0.9295 (macro-F1
  0.9320); 659 s of training on one thread. The old recipe (4 epochs, lr 1e-4) had 0.9260 / 0.9285.
  The 0.93 target is missed by one text (1,860 of 2,001 right; 0.93 needs 1,861).
  Several seeds (--seeds 0,1,2 --jobs 3), on three validation parts (--fold 0/1/2), mean accuracy:
  one model 0.9358, seed 0 + hybrid 0.9418 (kept), mean of 3 seeds 0.9413, 3 seeds + hybrid 0.9409.
  R-Drop (--rdrop 1.0 --body-dropout 0.1) on the same three parts: alone 0.9388 (kept 0.9380), with
  the hybrid head 0.9401 (kept 0.9418): not adopted.
  The kept recipe on other 80/20 splits (--split 1..4), ensemble / peer: 0.9355 / 0.8986,
  0.9370 / 0.9005, 0.9375 / 0.8951, 0.9385 / 0.9045 (split 0: 0.9295 / 0.8966).

    .venv/bin/python bench/finetune.py [--only sft|classify|banking77] [--epochs 2] [--sft-train 300]
    .venv/bin/python bench/finetune.py --only banking77 [--validation [--fold K]] [--split K] \
        [--seeds 0,1,2 --jobs 3] --epochs 4 --lr 1e-4 --label-smoothing 0.1 --layer-decay 0.8 \
        --ensemble --threads 1
"""

import os
import sys

sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FROZEN_RT_MACRO_F1 = 0.7664  # `llmlab classify --method embeddings`, rotten tomatoes validation (bench/apps.py)
FROZEN_B77_ACCURACY = 0.9205  # the app's best frozen-feature method on the banking77 split (bench/apps.py)


def rouge_l():
    """bench/inspect.py's ROUGE-L (imported by path: the file shares its name with a stdlib module)."""
    spec = importlib.util.spec_from_file_location("bench_inspect", REPO / "bench" / "inspect.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rouge_l


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --- sft -------------------------------------------------------------------------------------------
def bench_sft(data: Path, n_train: int, n_eval: int, max_len: int = 256) -> dict:
    from llmlab.generate import ChatTemplate, GenerationConfig, complete
    from llmlab.nn.lora import apply_lora
    from llmlab.train.sft import TrainConfig, build_examples, evaluate, fit, read_conversations, split
    from llmlab.weights.registry import load_decoder

    score = rouge_l()
    path = data / "instructions" / "instruction-data.json"
    conversations = read_conversations(path)
    bundle = load_decoder("smollm2", precision="fp32")
    tok, model = bundle.tokenizer, bundle.model
    template = ChatTemplate(bundle.chat_template, tok.bos_token or "", tok.eos_token or "")
    examples, _ = build_examples(conversations, tok, template, max_len=10_000, source=str(path))
    train_all, val = split(examples, 0.1, seed=0)
    train = [e for e in train_all if len(e.ids) <= max_len][:n_train]
    pad = tok.special_tokens[tok.eos_token]
    print(f"SFT data: {len(examples)} records -> {len(val)} held out; training on {len(train)} "
          f"(first of the rest with <= {max_len} tokens; {sum(len(e.ids) for e in train):,} tokens, "
          f"{sum(e.trained_tokens for e in train):,} answer tokens)")
    evals = val[:n_eval]
    config = GenerationConfig(max_new_tokens=96)

    def answers() -> list[str]:
        out = []
        for e in evals:
            prompt = template.render(conversations[e.record - 1][:-1], add_generation_prompt=True)
            out.append(complete(model, tok, prompt, config).text.strip())
        return out

    refs = [conversations[e.record - 1][-1]["content"] for e in evals]
    t0 = time.perf_counter()
    before_loss = evaluate(model, val, pad)
    before = answers()
    before_rouge = sum(score(a, r) for a, r in zip(before, refs)) / len(refs)
    print(f"before: validation loss {before_loss:.4f}, ROUGE-L {before_rouge:.4f} ({time.perf_counter() - t0:.0f} s)")
    torch.manual_seed(0)  # the adapters' A matrices start random
    apply_lora(model, ("q_proj", "v_proj"), r=8, alpha=16, dropout=0.05)
    cfg = TrainConfig(epochs=1, lr=2e-4, batch_size=8, eval_every=10_000)
    history = fit(model, train, [], cfg, pad)
    after_loss = evaluate(model, val, pad)
    after = answers()
    after_rouge = sum(score(a, r) for a, r in zip(after, refs)) / len(refs)
    print(f"after:  validation loss {after_loss:.4f}, ROUGE-L {after_rouge:.4f}; training {history.seconds:.0f} s, "
          f"{history.tokens / history.seconds:.0f} answer tokens/s, {history.steps} steps")
    print(f"\n| SmolLM2-135M-Instruct | validation loss ({len(val)} answers) | ROUGE-L ({len(evals)} answers) |")
    print("|---|---:|---:|")
    print(f"| before | {before_loss:.4f} | {before_rouge:.4f} |")
    print(f"| after LoRA SFT ({len(train)} records, 1 epoch) | {after_loss:.4f} | {after_rouge:.4f} |")
    for k in range(min(5, len(evals))):
        print(f"\n--- held-out record {evals[k].record}: {conversations[evals[k].record - 1][0]['content'][:200]!r}")
        print(f"reference: {refs[k][:300]!r}")
        print(f"before:    {before[k][:300]!r}")
        print(f"after:     {after[k][:300]!r}")
    return {"train_examples": len(train), "val_examples": len(val), "rouge_examples": len(evals),
            "val_loss_before": before_loss, "val_loss_after": after_loss, "rouge_l_before": before_rouge,
            "rouge_l_after": after_rouge, "train_seconds": history.seconds}


# --- classification --------------------------------------------------------------------------------
def fine_tune(train: tuple, test: tuple, cfg, seed: int, threads: int, progress: bool = True) -> dict:
    """Fine-tune MiniLM with one seed (head init and batch order) and predict the test texts."""
    import dataclasses

    from llmlab.train.classify import build_classifier, fit_classifier, predict_proba

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    labels = sorted(set(train[1]))
    clf = build_classifier("minilm", labels, max_len=128)
    history = fit_classifier(clf, list(train[0]), list(train[1]), dataclasses.replace(cfg, seed=seed), progress)
    t0 = time.perf_counter()
    probs = predict_proba(clf, list(test[0])).numpy()  # (N, labels)
    return {"seed": seed, "labels": labels, "probs": probs, "train_seconds": history.seconds,
            "texts_per_second": history.texts_per_second, "predict_seconds": time.perf_counter() - t0,
            "truncated": clf.truncated}


def bench_classify(name: str, train: tuple, test: tuple, cfg, frozen_note: str, ensemble: bool = False,
                   seeds: tuple = (0,), jobs: int = 1, save: Path | None = None) -> dict:
    """Fine-tune once per seed (``jobs`` processes at a time, one thread each when jobs > 1); report each
    model, the mean of their probabilities when there are several, and with --ensemble that mean
    averaged with the hybrid head's probabilities (equal weights, fixed beforehand)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import numpy as np

    from llmlab.apps.classify import classify, evaluate

    if jobs > 1:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs = list(pool.map(fine_tune, *zip(*[(train, test, cfg, s, 1, False) for s in seeds])))
    else:
        runs = [fine_tune(train, test, cfg, s, torch.get_num_threads()) for s in seeds]
    labels = runs[0]["labels"]
    options = "".join(f", {k} {getattr(cfg, k):g}" for k, off in (("label_smoothing", 0.0), ("layer_decay", 1.0),
                                                                   ("body_dropout", None), ("rdrop", 0.0))
                      if getattr(cfg, k) != off)
    print(f"{name}: MiniLM fine-tuned end to end ({len(train[0])} train, {cfg.epochs:g} epochs, lr {cfg.lr:g}"
          f"{options}, batch {cfg.batch_size}, max 128 tokens; {runs[0]['truncated']} texts cut)   {frozen_note}")
    out = {"epochs": cfg.epochs, "lr": cfg.lr, "label_smoothing": cfg.label_smoothing, "layer_decay": cfg.layer_decay,
           "body_dropout": cfg.body_dropout, "rdrop": cfg.rdrop, "train": len(train[0]), "test": len(test[0]),
           "seeds": []}
    for run in runs:
        m = evaluate(list(test[1]), [labels[i] for i in run["probs"].argmax(axis=1)], labels)
        print(f"  seed {run['seed']}: accuracy {m.accuracy:.4f}  macro-F1 {m.macro_f1:.4f}   [train "
              f"{run['train_seconds']:.0f} s, {run['texts_per_second']:.0f} texts/s; "
              f"predict {run['predict_seconds']:.0f} s]")
        out["seeds"].append({"seed": run["seed"], "accuracy": m.accuracy, "macro_f1": m.macro_f1,
                             "train_seconds": run["train_seconds"]})
    tuned = np.mean([run["probs"] for run in runs], axis=0)
    m = evaluate(list(test[1]), [labels[i] for i in tuned.argmax(axis=1)], labels)
    if len(runs) > 1:
        print(f"  mean of the {len(runs)} models' probabilities: accuracy {m.accuracy:.4f}  macro-F1 {m.macro_f1:.4f}")
    out.update(accuracy=m.accuracy, macro_f1=m.macro_f1)
    if ensemble:  # `llmlab classify --method ensemble`: the mean of these and the hybrid head's probabilities
        hybrid = classify(list(test[0]), "hybrid", train_texts=list(train[0]), train_labels=list(train[1]))
        assert hybrid.labels == labels
        mixed = (tuned + hybrid.probabilities) / 2
        e = evaluate(list(test[1]), [labels[i] for i in mixed.argmax(axis=1)], labels)
        h = evaluate(list(test[1]), hybrid.predicted, labels)
        print(f"  ensemble (mean of the fine-tuned and hybrid probabilities): accuracy {e.accuracy:.4f}  "
              f"macro-F1 {e.macro_f1:.4f}   [hybrid alone: accuracy {h.accuracy:.4f}]")
        out.update(ensemble_accuracy=e.accuracy, ensemble_macro_f1=e.macro_f1, hybrid_accuracy=h.accuracy)
    if save is not None:  # every model's probabilities, for analyses without training again
        arrays = {f"seed{run['seed']}": run["probs"] for run in runs}
        if ensemble:
            arrays["hybrid"] = hybrid.probabilities
        np.savez_compressed(save, labels=np.array(labels), truth=np.array(list(test[1])), **arrays)
    return out


def peer_scores():
    """bench/apps.py's peer (sentence-transformers on the same MiniLM folder + scikit-learn
    LogisticRegression), imported by path like `rouge_l`."""
    spec = importlib.util.spec_from_file_location("bench_apps", REPO / "bench" / "apps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.peer_scores


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--only", choices=["sft", "classify", "banking77"], action="append")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--sft-train", type=int, default=300)
    ap.add_argument("--sft-eval", type=int, default=30)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--layer-decay", type=float, default=1.0, help="layer-wise lr decay of the body (1: none)")
    ap.add_argument("--body-dropout", type=float, help="the encoder's dropout while fine-tuning (BERT: 0.1)")
    ap.add_argument("--rdrop", type=float, default=0.0, help="R-Drop weight (0: off; runs each batch twice)")
    ap.add_argument("--micro-batches", type=int, default=4, help="length-sorted pieces per batch (speed only)")
    ap.add_argument("--ensemble", action="store_true", help="banking77: also average with the hybrid head")
    ap.add_argument("--validation", action="store_true", help="banking77: train on 90%% of the 80%% training "
                    "part and score the other 10%% (for choosing settings)")
    ap.add_argument("--split", type=int, default=0, help="banking77: the 80/20 split's seed (0: the apps benchmark's)")
    ap.add_argument("--test", type=Path, metavar="CSV", help="banking77's official test split (text,category): "
                    "train on all of train.csv and score it (default: banking77/test.csv under --data when there)")
    ap.add_argument("--fold", type=int, default=0, help="with --validation: which random 10%% (split seed)")
    ap.add_argument("--save-probs", type=Path, metavar="FILE.npz", help="banking77: save each model's probabilities")
    ap.add_argument("--seeds", default="0", help="comma-separated: one fine-tuned model per seed, averaged")
    ap.add_argument("--jobs", type=int, default=1, help="models trained at once (one thread each when > 1)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="1 is faster on a shared machine")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    only = args.only or ["sft", "classify", "banking77"]
    seeds = tuple(int(s) for s in args.seeds.split(","))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    results = {}

    def train_config(lr: float):
        from llmlab.train.classify import ClassifierTrainConfig

        return ClassifierTrainConfig(epochs=args.epochs, lr=lr, batch_size=32, label_smoothing=args.label_smoothing,
                                     layer_decay=args.layer_decay, micro_batches=args.micro_batches,
                                     body_dropout=args.body_dropout, rdrop=args.rdrop)

    if "classify" in only:
        rt = args.data / "rotten_tomatoes"
        tr, va = read_rows(rt / "train.csv"), read_rows(rt / "validation.csv")
        results["rotten_tomatoes"] = bench_classify(
            "rotten tomatoes validation", ([r["text"] for r in tr], [r["label"] for r in tr]),
            ([r["text"] for r in va], [r["label"] for r in va]), train_config(args.lr),
            f"(frozen embeddings + logistic regression: macro-F1 {FROZEN_RT_MACRO_F1})", seeds=seeds, jobs=args.jobs)
    if "banking77" in only:
        from sklearn.model_selection import train_test_split

        rows = read_rows(args.data / "banking77" / "train.csv")
        x, y = [r["text"] for r in rows], [r["category"] for r in rows]
        test = args.test or args.data / "banking77" / "test.csv"
        if args.test and not test.is_file():
            raise SystemExit(f"{test}: no such file")
        if test.is_file() and not args.validation:  # the data set's own split
            x_tr, y_tr = x, y
            x_te, y_te = [r["text"] for r in read_rows(test)], [r["category"] for r in read_rows(test)]
            name = f"banking77 {test.name} (trained on all of train.csv)"
        else:
            x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=args.split)
            name = f"banking77 20% split (split seed {args.split})"
        if args.validation:  # choose settings here: 10% of the training part, the 20% left untouched
            x_tr, x_te, y_tr, y_te = train_test_split(x_tr, y_tr, test_size=0.1, stratify=y_tr,
                                                      random_state=args.fold)
            name = f"banking77 validation (10% of the 80%, fold {args.fold})"
        results["banking77"] = bench_classify(
            name, (x_tr, y_tr), (x_te, y_te), train_config(args.lr * 2),
            f"(best frozen-feature method: accuracy {FROZEN_B77_ACCURACY})", ensemble=args.ensemble,
            seeds=seeds, jobs=args.jobs, save=args.save_probs)
        peer = peer_scores()(x_tr, y_tr, x_te, y_te)["embeddings"]["accuracy"]
        results["banking77"]["peer_accuracy"] = peer
        print(f"  peer (sentence-transformers + LogisticRegression on the same split): accuracy {peer:.4f}")
    if "sft" in only:
        results["sft"] = bench_sft(args.data, args.sft_train, args.sft_eval)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
