"""Pre-training benchmark: the character-level "baby GPT" on tiny shakespeare, against nanoGPT's figures.

Runs ``llmlab train --preset shakespeare-char`` (or another preset / extra flags) in a fresh
process on ``tinyshakespeare/input.txt`` prepared at character level (first 90% of characters
train, last 10% validate, as nanoGPT's ``data/shakespeare_char/prepare.py``), then measures the
final model's validation loss on the WHOLE validation split (non-overlapping 64-token windows,
every validation character after the first window predicted once) and prints a table beside
nanoGPT's anchor figures. Writes loss.png, metrics.jsonl and a 200-character sample to --out.

nanoGPT cannot be run here (no network); its figures are quoted constants (see NANOGPT below).
The machine may be shared: the 1-minute load average is printed before and after the run.

    .venv/bin/python bench/train.py [--data ../shared/data] [--out /tmp/llmlab-bench-train]
                                    [--preset shakespeare-char] [-- extra llmlab train flags]
"""

import os
import sys

# bench/tokenize.py shares its name with the standard library's `tokenize`: keep this folder off the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# nanoGPT README, "baby GPT" CPU command: train.py config/train_shakespeare_char.py --device=cpu
# --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4
# --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0 (config: lr 1e-3, min_lr 1e-4,
# warmup 100, beta2 0.99, weight decay 0.1, grad clip 1.0). The README reports validation loss ~1.88;
# wall time and the 1.886 below were measured on this 2-core machine by the project (one run).
NANOGPT = {"batch": 12, "block": 64, "iters": 2000, "lr": 1e-3, "wall_s": 71.0, "val_loss": 1.886,
           "tokens_per_s": 12 * 64 * 2000 / 71.0, "val_tokens": "20 x 12 random windows of 64 (15,360)"}
TARGET = {"wall_s": 35.0, "val_loss": 1.88}


def load1() -> float:
    return os.getloadavg()[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path("/tmp/llmlab-bench-train"))
    ap.add_argument("--preset", default="shakespeare-char")
    ap.add_argument("extra", nargs="*", help="more `llmlab train` flags, after --")
    args = ap.parse_args()

    text = args.data / "tinyshakespeare" / "input.txt"
    if not text.is_file():
        print(f"no {text}: nothing to benchmark", file=sys.stderr)
        return 1
    import torch

    from llmlab.train.data import TokenData, eval_starts, prepare
    from llmlab.train.pretrain import evaluate, sample
    from llmlab.weights.checkpoint import load_checkpoint

    shutil.rmtree(args.out, ignore_errors=True)
    data_dir, run = args.out / "data", args.out / "run"
    t = time.perf_counter()
    prepare([text], "char", data_dir, val_fraction=0.1, progress=False)
    prep_s = time.perf_counter() - t

    cmd = [sys.executable, "-m", "llmlab.cli", "train", "--data", str(data_dir), "--out", str(run),
           "--preset", args.preset, "--quiet", "--format", "json", *args.extra]
    load_before = load1()
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    process_s = time.perf_counter() - t
    load_after = load1()
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return proc.returncode
    summary = json.loads(proc.stdout.strip().splitlines()[-1])

    if "--threads" in args.extra:  # evaluate with the thread count the run used
        torch.set_num_threads(int(args.extra[args.extra.index("--threads") + 1]))
    ckpt = load_checkpoint(run, trainer=True)
    val = TokenData(data_dir).split("val")
    T = ckpt.config.max_seq_len
    starts = eval_starts(len(val), T)
    full_val = evaluate(ckpt.model, val, starts, T, "cpu", batch=128)
    text_out = ckpt.tokenizer.decode(sample(ckpt.model, ckpt.tokenizer.encode("\n"), 200, seed=0))
    shutil.copy(run / "loss.png", args.out / "loss.png")
    (args.out / "sample.txt").write_text(text_out, encoding="utf-8")

    p = ckpt.trainer["config"]  # the settings the run actually used (preset + extra flags)
    rows = [
        ("", "llmlab", "nanoGPT (quoted)"),
        ("model", f"{p.get('family')} {p.get('n_layers')}L {p.get('n_heads')}H {p.get('dim')}d, "
                  f"{summary['parameters']:,} params", "gpt2-style 4L 4H 128d, ~0.8M params"),
        ("batch x block x iters", f"{p.get('batch_size')} x {p.get('block_size')} x {summary['step']}",
         f"{NANOGPT['batch']} x {NANOGPT['block']} x {NANOGPT['iters']}"),
        ("peak lr, warmup, min lr", f"{p.get('lr')}, {p.get('warmup')}, {p.get('min_lr')}", "0.001, 100, 0.0001"),
        ("training wall s (incl. evals)", f"{summary['seconds']:.1f}", f"{NANOGPT['wall_s']:.0f}"),
        ("process wall s (incl. start)", f"{process_s:.1f}", "-"),
        ("training tokens/s", f"{summary['tokens_per_second']:,.0f}", f"{NANOGPT['tokens_per_s']:,.0f}"),
        ("final val loss", f"{full_val:.4f}", f"{NANOGPT['val_loss']}"),
        ("val loss measured on", f"all {len(starts) * T:,} val tokens ({len(starts)} x {T})", NANOGPT["val_tokens"]),
        ("val loss at last eval (sample)", f"{summary['val_loss']:.4f} ({p.get('eval_windows')} windows)", "-"),
        ("load average (1 min) before/after", f"{load_before:.2f} / {load_after:.2f}", "-"),
    ]
    print(f"bench/train.py: preset {args.preset} {' '.join(args.extra)} | torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, data prepared in {prep_s:.1f} s")
    width = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:<{w1}}  {r[2]}")
    ok = summary["seconds"] <= TARGET["wall_s"] and full_val <= TARGET["val_loss"]
    print(f"target: val loss <= {TARGET['val_loss']} in <= {TARGET['wall_s']:.0f} s -> {'MET' if ok else 'NOT MET'}")
    print(f"wrote {args.out / 'loss.png'}, {args.out / 'sample.txt'}, {run / 'metrics.jsonl'}")
    print("sample (200 characters, temperature 0.8, top-k 200, seed 0):")
    print(text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
