"""Model benchmarks, side by side with the peers in one run, printing ratios.

SmolLM2-135M-Instruct (same GGUF file): load time, prefill tokens/s (512-token prompt),
decode tokens/s (batch 1, 128 new tokens, greedy) and peak RSS, for llmlab float32, int8
and int4, and HF transformers (float32, dequantized from the GGUF). Each runs in its own
process so that peak RSS belongs to it alone. Plus the int8 path's quality cost
(perplexity on tiny shakespeare vs float32) of the quantized paths and the memory-bandwidth bound of decoding
(bytes of weights read per token / measured copy bandwidth).

all-MiniLM-L6-v2: sentences/s at batch 32 and 128 vs sentence-transformers on the same
folder and sentences (STS-B dev sentences, or the shipped sample when data is absent).

    .venv/bin/python bench/models.py [--data ../shared/data] [--json out.json]
"""

import os
import sys

# bench/tokenize.py shares its name with the standard library's `tokenize`: keep this folder
# off the import path so `import tokenize` (linecache, torch, ...) finds the real module.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prompt_ids(tokenizer, data: Path, n: int) -> list[int]:
    path = data / "tinyshakespeare" / "input.txt"
    if not path.is_file():
        path = REPO / "tests" / "data" / "sample_en.txt"
    ids = tokenizer.encode(path.read_text(encoding="utf-8")[:20_000])
    return ids[:n]


# --- one decoder implementation per process ------------------------------------------------
def worker(kind: str, data: Path) -> dict:
    import torch

    from llmlab.packages import smollm2_gguf
    from llmlab.tokenize import load_tokenizer

    start = time.perf_counter()
    if kind == "hf":
        from transformers import AutoModelForCausalLM

        path = smollm2_gguf()
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
        load_s = time.perf_counter() - start
        tok = load_tokenizer("smollm2")  # ours, for the same prompt ids; not part of HF's load time
    else:
        from llmlab.weights.gguf import load_gguf

        bundle = load_gguf(smollm2_gguf(), precision=kind)
        load_s = time.perf_counter() - start
        model, tok = bundle.model, bundle.tokenizer
    prompt = torch.tensor([prompt_ids(tok, data, 512)])
    with torch.inference_mode():
        prefill = []
        for _ in range(3):
            t = time.perf_counter()
            if kind == "hf":
                model(prompt, use_cache=True, logits_to_keep=1)
            else:
                model(prompt, cache=model.new_cache(1, 512 + 129), last_only=True)
            prefill.append(time.perf_counter() - t)
        decode = []
        for _ in range(2):
            if kind == "hf":
                out = model(prompt, use_cache=True, logits_to_keep=1)
                past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
                t = time.perf_counter()
                for _ in range(128):
                    out = model(nxt, past_key_values=past, use_cache=True)
                    past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            else:
                cache = model.new_cache(1, 512 + 129)
                nxt = model(prompt, cache=cache, last_only=True)[:, -1:].argmax(-1)
                t = time.perf_counter()
                for _ in range(128):
                    nxt = model(nxt, cache=cache)[:, -1:].argmax(-1)
            decode.append(time.perf_counter() - t)
    return {"kind": kind, "load_s": load_s, "prefill_tok_s": 512 / min(prefill), "decode_tok_s": 128 / min(decode),
            "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads()}


def run_worker(kind: str, data: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--data", str(data)],
                         capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"worker {kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- quality and bandwidth -------------------------------------------------------------------
def perplexity(model, ids, window: int = 1024, windows: int = 4) -> float:
    import torch

    losses = []
    with torch.inference_mode():
        for w in range(windows):
            chunk = torch.tensor([ids[w * window:(w + 1) * window]])
            logits = model(chunk)
            losses.append(torch.nn.functional.cross_entropy(logits[0, :-1], chunk[0, 1:]).item())
    return float(torch.tensor(losses).mean().exp())


def copy_bandwidth_gb_s() -> float:
    import torch

    src = torch.ones(64 * 1024 * 1024)  # 256 MB, far beyond any cache
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.numel() * 4 / best / 1e9  # bytes read + bytes written


def quality_and_bound(data: Path) -> dict:
    from llmlab.packages import smollm2_gguf
    from llmlab.weights.gguf import load_gguf

    fp32 = load_gguf(smollm2_gguf(), precision="fp32")
    path = data / "tinyshakespeare" / "input.txt"
    text = path.read_text() if path.is_file() else (REPO / "tests" / "data" / "sample_en.txt").read_text()
    ids = fp32.tokenizer.encode(text[:60_000])
    ppl32 = perplexity(fp32.model, ids)
    bytes32 = sum(p.numel() * p.element_size() for p in fp32.model.parameters())
    del fp32
    out = {"ppl_fp32": ppl32, "weights_mb_fp32": bytes32 / 1e6}
    for precision in ("int8", "int4"):
        q = load_gguf(smollm2_gguf(), precision=precision).model
        out[f"ppl_{precision}"] = perplexity(q, ids)
        tensors = [*q.buffers(), *q.parameters()]
        out[f"weights_mb_{precision}"] = sum(t.numel() * t.element_size() for t in tensors) / 1e6
        del q
    out["copy_gb_s"] = bw = copy_bandwidth_gb_s()
    for precision in ("fp32", "int8", "int4"):
        out[f"bound_{precision}_tok_s"] = bw * 1e3 / out[f"weights_mb_{precision}"]
    return out


# --- embeddings -----------------------------------------------------------------------------
def embeddings(data: Path) -> list[dict]:
    from sentence_transformers import SentenceTransformer

    from llmlab.packages import minilm_dir
    from llmlab.weights.registry import load_encoder

    path = data / "stsb" / "sts-dev.csv"
    if path.is_file():
        rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
        sentences = [s for r in rows if len(r) >= 7 for s in (r[5], r[6])][:2000]
    else:
        sentences = [s for s in (REPO / "tests" / "data" / "sample_en.txt").read_text().splitlines() if s][:2000]
    ours, peer = load_encoder("minilm"), SentenceTransformer(str(minilm_dir()), device="cpu")
    rows = []
    for batch in (32, 128):
        best = {"ours": float("inf"), "peer": float("inf")}
        for _ in range(2):  # alternate so both see the same machine state
            t = time.perf_counter()
            ours.encode(sentences, batch_size=batch)
            best["ours"] = min(best["ours"], time.perf_counter() - t)
            t = time.perf_counter()
            peer.encode(sentences, batch_size=batch)
            best["peer"] = min(best["peer"], time.perf_counter() - t)
        rows.append({"batch": batch, "sentences": len(sentences), "ours_s_per_s": len(sentences) / best["ours"],
                     "peer_s_per_s": len(sentences) / best["peer"]})
    return rows


def main():
    ap = argparse.ArgumentParser(description="model benchmarks vs HF transformers and sentence-transformers")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--worker", choices=["fp32", "int8", "int4", "hf"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data)))
        return
    runs = {k: run_worker(k, args.data) for k in ("hf", "fp32", "int8", "int4")}
    q = quality_and_bound(args.data)
    emb = embeddings(args.data)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    hf = runs["hf"]
    print(f"\n## Model benchmarks ({os.cpu_count()} cores, torch threads {hf['threads']}, commit {commit})\n")
    print("SmolLM2-135M-Instruct, same GGUF file; ratios are llmlab / HF transformers\n")
    print("| implementation | load s | prefill tok/s (512) | ratio | decode tok/s (128) | ratio | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k, label in (("hf", "HF transformers fp32"), ("fp32", "llmlab fp32"), ("int8", "llmlab int8"),
                     ("int4", "llmlab int4")):
        r = runs[k]
        print(f"| {label} | {r['load_s']:.2f} | {r['prefill_tok_s']:.0f} | "
              f"{r['prefill_tok_s'] / hf['prefill_tok_s']:.2f}x | {r['decode_tok_s']:.1f} | "
              f"{r['decode_tok_s'] / hf['decode_tok_s']:.2f}x | {r['peak_rss_mb']:.0f} |")
    print(f"\nDecode memory-bandwidth bound: copy bandwidth {q['copy_gb_s']:.1f} GB/s (read + write, 256 MB); "
          + "; ".join(f"{p} weights {q[f'weights_mb_{p}']:.0f} MB -> {q[f'bound_{p}_tok_s']:.0f} tok/s"
                      for p in ("fp32", "int8", "int4")) + ".")
    print(f"Quality: perplexity on tiny shakespeare (4 x 1024 tokens) {q['ppl_fp32']:.3f} (fp32), "
          + ", ".join(f"{q[f'ppl_{p}']:.3f} ({p}, {100 * (q[f'ppl_{p}'] / q['ppl_fp32'] - 1):+.2f}%)"
                      for p in ("int8", "int4")) + ".\n")
    print("all-MiniLM-L6-v2 sentence embeddings, sentences/s; ratio = llmlab / sentence-transformers\n")
    print("| batch | sentences | llmlab | sentence-transformers | ratio |")
    print("|---:|---:|---:|---:|---:|")
    for r in emb:
        print(f"| {r['batch']} | {r['sentences']} | {r['ours_s_per_s']:.0f} | {r['peer_s_per_s']:.0f} | "
              f"{r['ours_s_per_s'] / r['peer_s_per_s']:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"commit": commit, "decoder": runs, "quality": q, "embeddings": emb}, indent=1))


if __name__ == "__main__":
    main()
