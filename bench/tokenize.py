"""Tokenizer benchmarks, side by side with the peers in one run, printing ratios.

- encode throughput (MB/s, single thread) of our SmolLM2 byte-level BPE vs HF
  `tokenizers` and vs `tiktoken` built offline from the same ranks and pattern; ids are
  checked identical. "cold" = a freshly loaded tokenizer (empty piece cache), "warm" =
  the same text again (median of 3). Inputs: tiny shakespeare as one string and as a
  batch of lines, and the Chinese hotel reviews (ChnSentiCorp), from ../shared/data.
- encode throughput of our MiniLM WordPiece vs HF `tokenizers`.
- BPE training time for a 4096 vocabulary on tiny shakespeare vs HF's BpeTrainer.

    .venv/bin/python bench/tokenize.py [--data ../shared/data] [--json results.json]
"""

import os
import sys

# This file shares its name with the standard library's `tokenize`; keep its folder off
# the import path so that `import tokenize` (used by linecache, torch, ...) finds the real one.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

os.environ["RAYON_NUM_THREADS"] = "1"  # HF tokenizers single-threaded, before it is imported
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def smollm2_oracle():
    """HF tokenizers with SmolLM2's vocabulary (read from the GGUF by transformers) and
    the pre-tokenizer of its published tokenizer.json."""
    from tokenizers import Tokenizer, pre_tokenizers
    from transformers import AutoTokenizer

    from llmlab.packages import smollm2_gguf

    path = smollm2_gguf()
    hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).backend_tokenizer
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    spec = hf.to_str()
    return lambda: Tokenizer.from_str(spec)


def tiktoken_encoding(tok):
    """tiktoken.Encoding from SmolLM2's ranks (token bytes -> id) and our pre-tokenizer pattern."""
    import tiktoken

    from llmlab.tokenize.bpe import CHAR_TO_BYTE

    ranks = {}
    for i, t in enumerate(tok.vocab):
        if i not in tok._special_ids:
            ranks[bytes(CHAR_TO_BYTE[c] for c in t)] = i
    pattern = r"\p{N}|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"
    return tiktoken.Encoding("smollm2", pat_str=pattern, mergeable_ranks=ranks, special_tokens=tok.special_tokens)


def throughput(nbytes, seconds):
    return nbytes / 1e6 / seconds


def bench_encode(name, text, ours_factory, hf_factory, tt=None, batch=False, hf_special=False):
    """Cold and warm MB/s for ours, HF (and tiktoken); asserts identical ids.
    ``hf_special``: HF adds the model's special tokens ([CLS]/[SEP]) as our encode does."""
    nbytes = len(text.encode("utf-8")) if not batch else sum(len(t.encode("utf-8")) for t in text)
    row = {"input": name, "MB": round(nbytes / 1e6, 2)}
    ours = ours_factory()
    hf = hf_factory()
    if batch:
        run_ours = lambda: [ours.encode(t) for t in text]  # noqa: E731
        run_hf = lambda: [e.ids for e in hf.encode_batch(text, add_special_tokens=hf_special)]  # noqa: E731
    else:
        run_ours = lambda: ours.encode(text)  # noqa: E731
        run_hf = lambda: hf.encode(text, add_special_tokens=hf_special).ids  # noqa: E731
    t_ours, ids_ours = timed(run_ours)
    t_hf, ids_hf = timed(run_hf)
    assert ids_ours == ids_hf, f"{name}: ids differ from HF tokenizers"
    warm_ours = statistics.median(timed(run_ours)[0] for _ in range(3))
    warm_hf = statistics.median(timed(run_hf)[0] for _ in range(3))
    row |= {
        "tokens": sum(map(len, ids_ours)) if batch else len(ids_ours),
        "ours_cold": throughput(nbytes, t_ours), "hf_cold": throughput(nbytes, t_hf),
        "ours_warm": throughput(nbytes, warm_ours), "hf_warm": throughput(nbytes, warm_hf),
    }
    if tt is not None:
        run_tt = (lambda: [tt.encode_ordinary(t) for t in text]) if batch else (lambda: tt.encode_ordinary(text))
        t_tt, ids_tt = timed(run_tt)
        row["tiktoken_ids_identical"] = ids_tt == ids_ours
        row["tiktoken"] = throughput(nbytes, statistics.median([t_tt] + [timed(run_tt)[0] for _ in range(2)]))
    return row


def bench_train(path: Path, vocab_size: int = 4096):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from llmlab.tokenize.bpe_train import read_chunks, train_bpe

    t_ours, tok = timed(lambda: train_bpe(read_chunks([path]), vocab_size, progress=False))
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    t_hf, _ = timed(lambda: hf.train([str(path)], trainer))
    text = path.read_text()
    return {"vocab_size": vocab_size, "ours_s": t_ours, "hf_s": t_hf,
            "ours_tokens": len(tok.encode(text)), "hf_tokens": len(hf.encode(text).ids)}


def main():
    ap = argparse.ArgumentParser(description="tokenizer benchmarks vs HF tokenizers and tiktoken")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from llmlab.packages import minilm_dir
    from llmlab.tokenize.bpe import BPETokenizer
    from llmlab.tokenize.gguf import read_gguf_metadata
    from llmlab.tokenize.wordpiece import WordPieceTokenizer

    shakespeare = args.data / "tinyshakespeare" / "input.txt"
    chinese = args.data / "chinese" / "reviews" / "ChnSentiCorp_htl_all.csv"
    if not shakespeare.is_file():
        print(f"data sets not found under {args.data}; using the small shipped sample instead")
        shakespeare = chinese = REPO / "tests" / "data" / "sample_en.txt"

    from llmlab.packages import smollm2_gguf

    meta = read_gguf_metadata(smollm2_gguf())
    ours_bpe = lambda: BPETokenizer.from_gguf_metadata(meta, "smollm2")  # noqa: E731
    hf_bpe = smollm2_oracle()
    tt = tiktoken_encoding(ours_bpe())
    en, zh = shakespeare.read_text(), chinese.read_text()
    rows = [
        bench_encode("tiny shakespeare (one string)", en, ours_bpe, hf_bpe, tt),
        bench_encode("tiny shakespeare (batch of lines)", en.splitlines(keepends=True), ours_bpe, hf_bpe, tt,
                     batch=True),
        bench_encode("Chinese hotel reviews (one string)", zh, ours_bpe, hf_bpe, tt),
    ]
    from tokenizers import Tokenizer

    mini = minilm_dir()
    hf_wp = lambda: Tokenizer.from_file(str(mini / "tokenizer.json"))  # noqa: E731

    def hf_wp_plain():
        t = hf_wp()
        t.no_truncation()
        t.no_padding()
        return t

    wp_rows = [bench_encode("tiny shakespeare (one string)", en, lambda: WordPieceTokenizer.from_vocab_txt(
        mini / "vocab.txt"), hf_wp_plain, hf_special=True)]
    train = bench_train(shakespeare)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    print(f"\n## Tokenizer benchmarks ({platform.machine()}, {os.cpu_count()} cores, single thread, "
          f"commit {commit})\n")
    print("SmolLM2 byte-level BPE encode, MB/s (ids identical to HF tokenizers in every row)\n")
    print_encode_table(rows)
    print("\nMiniLM WordPiece encode, MB/s (ids identical to HF tokenizers)\n")
    print_encode_table(wp_rows)
    print("\nByte-level BPE training, tiny shakespeare, vocabulary 4096\n")
    print("| llmlab s | HF s | ratio (llmlab / HF time) | llmlab tokens on the text | HF tokens |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {train['ours_s']:.2f} | {train['hf_s']:.2f} | {train['ours_s'] / train['hf_s']:.2f}x | "
          f"{train['ours_tokens']:,} | {train['hf_tokens']:,} |")
    if args.json:
        doc = {"commit": commit, "bpe": rows, "wordpiece": wp_rows, "train": train}
        args.json.write_text(json.dumps(doc, indent=1))


def print_encode_table(rows):
    """Markdown table; ratios are llmlab / HF throughput (above 1 = llmlab faster)."""
    tiktoken = "tiktoken" in rows[0]
    print("| input | MB | tokens | llmlab cold | HF cold | ratio | llmlab warm | HF warm | ratio |"
          + (" tiktoken (same ids) |" if tiktoken else ""))
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if tiktoken else ""))
    for r in rows:
        line = (f"| {r['input']} | {r['MB']} | {r['tokens']:,} | {r['ours_cold']:.2f} | {r['hf_cold']:.2f} | "
                f"{r['ours_cold'] / r['hf_cold']:.2f}x | {r['ours_warm']:.2f} | {r['hf_warm']:.2f} | "
                f"{r['ours_warm'] / r['hf_warm']:.2f}x |")
        if tiktoken:
            line += f" {r['tiktoken']:.2f} ({'yes' if r['tiktoken_ids_identical'] else 'NO'}) |"
        print(line)

if __name__ == "__main__":
    main()
