"""Experiment `rnn-vs-attention`: reversing sequences with and without attention, at one parameter budget.

Claim (primer, "from RNNs to attention"): an encoder-decoder whose decoder sees the source only
through the encoder's final state (Sutskever, Vinyals & Le 2014) has to squeeze the whole sequence
into one fixed-size vector, so it fails more and more as sequences get longer; letting the decoder
look back at every encoder state (additive attention, Bahdanau, Cho & Bengio 2014) removes that
bottleneck, and the transformer (Vaswani et al. 2017) keeps the look-back while dropping the
recurrence, so one training step is a few large matrix products instead of a loop over positions.

Task: reverse a sequence of random symbols (20 symbols; quick: lengths 4-24, full: 5-60). Every
source ends with EOS (as in Sutskever et al.), the target is the reversed symbols then EOS. The
difficulty grows with length for a fixed-size state (it must hold every symbol until the end), and
reversal, unlike copying, needs an alignment that runs against the reading order: output i comes
from source position n-1-i, the anti-diagonal, which an attention model can learn to look up.

Models: `llmlab.models.seq2seq` — the GRU encoder-decoder with only the final state as bridge
(`rnn`), the GRU with additive attention and a bidirectional encoder (`attention`), and the
pre-LN transformer (`transformer`), one layer each, sized by `equal_budget_configs` to the same
number of weights. Training: AdamW (no weight decay), one learning rate for all, teacher forcing,
cross-entropy ignoring padding, gradient norm clipped at 1, random batches of mixed lengths drawn
uniformly from the range, the same batches in the same order for every model. The budget is the
same for every model: quick, 120 steps (a fixed count, so the test's numbers do not depend on the
machine's load); full, 150 s of training (a faster step buys more steps, as it would in practice),
which makes the full run's step counts depend on the machine. Test:
held-out sequences (never drawn for training), bucketed by length. Accuracy comes from one
teacher-forced pass: per-token accuracy (the argmax at each target position given the true
prefix) and exact match (every position right, EOS included, which is exactly when greedy
decoding reproduces the target: the models' greedy decoding is tested equal to the argmax of
teacher forcing). Speed: training time only (evaluation excluded), each model at the thread count
that measured faster for it (full) or one thread (quick).
Test: tests/experiments/test_rnn_vs_attention.py (the quick run: both attention models beat the
plain RNN on per-token accuracy at the longest lengths; the report and its figures exist).
"""

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llmlab.experiments import EXPERIMENTS
from llmlab.experiments.common import Report, new_figure, png, setup_block, table
from llmlab.models.seq2seq import KINDS, build_seq2seq, count_parameters, equal_budget_configs

NAME = "rnn-vs-attention"
CLAIM = EXPERIMENTS[NAME].claim
PAD, BOS, EOS = 0, 1, 2  # symbols are 3 .. 3 + symbols - 1
LABELS = {"rnn": "GRU, final state only (2014)", "attention": "GRU + additive attention (2014)",
          "transformer": "transformer (2017)"}


@dataclass
class Setup:
    symbols: int  # distinct symbols in a sequence
    min_len: int
    max_len: int
    budget: int  # parameters per model
    steps: int  # at most this many training steps per model...
    seconds: float | None  # ...and at most this many training seconds (None: steps only); the same for every model
    batch_size: int
    lr: float
    buckets: int  # test length buckets, equal widths over min_len..max_len
    test_per_bucket: int
    valid_per_bucket: int  # the validation set that decides "time to target"
    eval_every: int  # steps between validations
    target: float  # validation exact match to reach on every bucket

    @property
    def vocab_size(self) -> int:
        return self.symbols + 3


# quick: a fixed number of steps, so that the test's numbers do not depend on the machine's load
QUICK = Setup(symbols=20, min_len=4, max_len=24, budget=50_000, steps=120, seconds=None, batch_size=32, lr=1e-2,
              buckets=4, test_per_bucket=64, valid_per_bucket=16, eval_every=40, target=0.5)
# full: the same wall-clock budget for each model, so that a faster step buys more steps
FULL = Setup(symbols=20, min_len=5, max_len=60, budget=200_000, steps=5000, seconds=150.0, batch_size=64, lr=3e-3,
             buckets=5, test_per_bucket=100, valid_per_bucket=32, eval_every=25, target=0.9)


# --- data ------------------------------------------------------------------------------
def bucket_edges(s: Setup) -> list[tuple[int, int]]:
    """``buckets`` ranges (lo, hi), inclusive, that cover min_len..max_len."""
    span = s.max_len - s.min_len + 1
    cuts = [s.min_len + round(i * span / s.buckets) for i in range(s.buckets + 1)]
    return [(cuts[i], cuts[i + 1] - 1) for i in range(s.buckets)]


def draw(gen: torch.Generator, s: Setup, lo: int, hi: int, avoid: set | None = None) -> list[int]:
    """One random sequence of symbols with a length uniform in lo..hi, not in ``avoid``."""
    while True:
        n = int(torch.randint(lo, hi + 1, (1,), generator=gen))
        seq = (torch.randint(0, s.symbols, (n,), generator=gen) + 3).tolist()
        if avoid is None or tuple(seq) not in avoid:
            return seq


def batch(seqs: list[list[int]]):
    """src (B, S) = symbols + EOS, src_lengths (B,), tgt_in (B, T) = BOS + reversed, tgt_out (B, T) =
    reversed + EOS; right-padded with PAD, T = S."""
    B, S = len(seqs), max(len(q) for q in seqs) + 1
    src = torch.full((B, S), PAD, dtype=torch.long)
    tgt_in, tgt_out = src.clone(), src.clone()
    for i, q in enumerate(seqs):
        n = len(q)
        src[i, :n + 1] = torch.tensor(q + [EOS])
        tgt_in[i, :n + 1] = torch.tensor([BOS] + q[::-1])
        tgt_out[i, :n + 1] = torch.tensor(q[::-1] + [EOS])
    lengths = torch.tensor([len(q) + 1 for q in seqs])
    return src, lengths, tgt_in, tgt_out


def held_out(s: Setup, seed: int, per_bucket: int) -> list[list[list[int]]]:
    """Per length bucket, ``per_bucket`` sequences drawn with their own generator."""
    gen = torch.Generator().manual_seed(seed)
    return [[draw(gen, s, lo, hi) for _ in range(per_bucket)] for lo, hi in bucket_edges(s)]


def training_batches(s: Setup, seed: int, avoid: set):
    """Up to ``steps`` training batches, lengths uniform in the whole range, test and validation
    sequences excluded; the same seed gives every model the same batches in the same order."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(s.steps):
        yield [draw(gen, s, s.min_len, s.max_len, avoid) for _ in range(s.batch_size)]


# --- training and evaluation -----------------------------------------------------------------
def loss_of(model, b) -> torch.Tensor:
    src, lengths, tgt_in, tgt_out = b
    logits = model(src, lengths, tgt_in)  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD)


@torch.no_grad()
def evaluate(model, buckets: list[list[list[int]]]) -> list[dict]:
    """Per bucket: per-token accuracy and exact match of the teacher-forced argmax."""
    model.eval()
    out = []
    for seqs in buckets:
        src, lengths, tgt_in, tgt_out = batch(seqs)
        pred = model(src, lengths, tgt_in).argmax(-1)  # (B, T)
        real = tgt_out != PAD
        right = (pred == tgt_out) & real
        out.append({"token": float(right.sum() / real.sum()),
                    "exact": float((right.sum(1) == real.sum(1)).float().mean())})
    model.train()
    return out


def fastest_threads(model, b, candidates: list[int]) -> tuple[int, dict]:
    """The thread count with the faster forward + backward on batch ``b`` (after one warm-up step);
    the model's weights are restored afterwards."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    seconds = {}
    for n in candidates:
        torch.set_num_threads(n)
        times = []
        for _ in range(2):
            t = time.perf_counter()
            loss_of(model, b).backward()
            times.append(time.perf_counter() - t)
        seconds[n] = times[1]
    model.load_state_dict(state)
    model.zero_grad(set_to_none=True)
    return min(seconds, key=seconds.get), seconds


def train(kind: str, cfg, s: Setup, seed: int, batches, valid, threads: int) -> dict:
    """Train one model on ``batches`` until they or ``s.seconds`` of training run out; validation
    curve, time to target, speed."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = build_seq2seq(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.0)
    seconds, tokens, curve, reached = 0.0, 0, [], None
    for step, seqs in enumerate(batches, 1):
        b = batch(seqs)
        t = time.perf_counter()
        loss = loss_of(model, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seconds += time.perf_counter() - t
        tokens += int((b[3] != PAD).sum())
        out_of_time = s.seconds is not None and seconds >= s.seconds
        if step % s.eval_every == 0 or step == s.steps or out_of_time:
            worst = min(r["exact"] for r in evaluate(model, valid))
            curve.append((step, seconds, worst, loss.item()))
            if reached is None and worst >= s.target:
                reached = (step, seconds)
        if out_of_time:
            break
    return {"model": model, "steps": step, "seconds": seconds, "tokens": tokens, "curve": curve,
            "reached": reached}


# --- the experiment ----------------------------------------------------------------------------
def run(quick: bool = False, seed: int = 0) -> Report:
    s = QUICK if quick else FULL
    threads_before = torch.get_num_threads()
    try:
        return _run(s, quick, seed, threads_before)
    finally:
        torch.set_num_threads(threads_before)


def _run(s: Setup, quick: bool, seed: int, threads_before: int) -> Report:
    t_start = time.perf_counter()
    configs = equal_budget_configs(s.vocab_size, s.budget, n_layers=1, n_heads=4)
    test = held_out(s, seed + 1, s.test_per_bucket)
    valid = held_out(s, seed + 2, s.valid_per_bucket)
    avoid = {tuple(q) for group in test + valid for q in group}
    edges = bucket_edges(s)

    results, params, thread_times = {}, {}, {}
    for kind in KINDS:
        torch.manual_seed(seed)
        params[kind] = count_parameters(build_seq2seq(configs[kind]))
        if quick:
            threads = 1
        else:
            candidates = sorted({1, min(2, threads_before)})
            first = next(training_batches(s, seed, avoid))[:16]
            threads, thread_times[kind] = fastest_threads(build_seq2seq(configs[kind]), batch(first), candidates)
        r = train(kind, configs[kind], s, seed, training_batches(s, seed, avoid), valid, threads)
        r["threads"] = threads
        r["test"] = evaluate(r["model"], test)
        results[kind] = r
    torch.set_num_threads(threads_before)  # the setup block reports the process's own setting

    longest = {k: results[k]["test"][-1] for k in KINDS}
    checks = {"longest_token": {k: v["token"] for k, v in longest.items()},
              "longest_exact": {k: v["exact"] for k, v in longest.items()},
              "params": params, "buckets": edges,
              "reached": {k: results[k]["reached"] for k in KINDS},
              "tokens_per_s": {k: results[k]["tokens"] / results[k]["seconds"] for k in KINDS}}
    figures = {"accuracy.png": plot_accuracy(results, edges, s), "curves.png": plot_curves(results, s),
               "alignment.png": plot_alignment(results, test)}
    markdown = write_markdown(s, quick, seed, configs, params, results, edges, thread_times,
                              time.perf_counter() - t_start)
    lo, hi = edges[-1]
    headline = {}
    for k in KINDS:
        headline[f"{k}: exact / token acc, lengths {lo}-{hi}"] = (f"{longest[k]['exact']:.3f} / "
                                                                    f"{longest[k]['token']:.3f}")
    for k in KINDS:
        reached = results[k]["reached"]
        headline[f"{k}: time to {s.target:.0%} exact on all lengths"] = (
            f"{reached[1]:.1f} s ({reached[0]} steps)" if reached else "not reached within the budget")
    for k in KINDS:
        headline[f"{k}: training tokens/s"] = round(checks["tokens_per_s"][k])
    for k in KINDS:
        headline[f"{k}: steps in the budget"] = results[k]["steps"]
    return Report(NAME, CLAIM, headline, markdown, figures, checks)


def budget_text(s: Setup) -> str:
    if s.seconds is None:
        return f"{s.steps} steps"
    return f"{s.seconds:.0f} s of training or {s.steps} steps, whichever comes first"


def write_markdown(s, quick, seed, configs, params, results, edges, thread_times, total_s) -> str:
    def size(k):
        c = configs[k]
        return f"dim {c.dim}" + (f", {c.n_heads} heads, MLP {c.ffn_dim}" if k == "transformer" else
                                 ", bidirectional encoder" if k == "attention" else "")

    setup = [
        f"task: reverse a sequence of {s.symbols} random symbols, lengths {s.min_len}-{s.max_len} (uniform), "
        "source = symbols + EOS, target = reversed symbols + EOS",
        f"models at a budget of {s.budget:,} parameters (one layer each): "
        + "; ".join(f"{k} {params[k]:,} ({size(k)})" for k in KINDS),
        f"training budget per model: {budget_text(s)}; batches of {s.batch_size} sequences, the same batches in "
        "the same order for every model; AdamW "
        f"lr {s.lr:g}, no weight decay, gradient norm clipped at 1, teacher forcing, seed {seed}",
        f"test: {s.test_per_bucket} held-out sequences per length bucket (never drawn for training); validation: "
        f"{s.valid_per_bucket} per bucket, every {s.eval_every} steps, target exact match >= {s.target:.0%} "
        "on every bucket",
        "threads per model: " + ", ".join(f"{k} {results[k]['threads']}" for k in KINDS)
        + (" (quick: one thread)" if quick else " (the faster of the measured counts below)"),
        f"whole run {total_s:.0f} s",
    ]
    md = [f"# Experiment: {NAME}\n", f"Claim: {CLAIM}\n", setup_block(NAME, quick, seed, setup)]
    header = ["model"] + [f"{lo}-{hi}" for lo, hi in edges]
    md += ["## Accuracy by input length (held-out test)\n", "Exact match (the whole reversed sequence right):\n",
           table(header, [[k] + [r["exact"] for r in results[k]["test"]] for k in KINDS]),
           "\nPer-token accuracy (teacher-forced argmax):\n",
           table(header, [[k] + [r["token"] for r in results[k]["test"]] for k in KINDS]),
           "\n![accuracy by length](accuracy.png)\n"]
    rows = []
    for k in KINDS:
        r = results[k]
        reached = r["reached"]
        rows.append([k, f"{params[k]:,}", r["threads"], r["steps"], f"{r['steps'] / r['seconds']:.1f}",
                     f"{r['tokens'] / r['seconds']:,.0f}", f"{r['seconds']:.1f}",
                     f"{reached[1]:.1f} s / {reached[0]} steps" if reached else "not reached within the budget",
                     max(c[2] for c in r["curve"])])
    md += ["## Speed and time to the target\n",
           table(["model", "parameters", "threads", "steps", "steps/s", "target tokens/s", "training s",
                  f"to {s.target:.0%} exact on all lengths", "best worst-bucket exact"], rows),
           "\nTraining seconds count the forward, backward and optimizer steps only (validation excluded).\n",
           "\n![validation curves](curves.png)\n"]
    if thread_times:
        md += ["\nOne training step (ms) by thread count, measured before training:\n",
               table(["model"] + [f"{n} thread(s)" for n in next(iter(thread_times.values()))],
                     [[k] + [f"{1000 * t:.0f}" for t in thread_times[k].values()] for k in KINDS])]
    md += ["\n## Alignment\n", "Attention weights while greedy-decoding one held-out sequence from the longest "
           "bucket (transformer: last decoder layer, heads averaged). Reversal is the anti-diagonal.\n",
           "\n![alignment](alignment.png)\n", "\n## What the numbers say\n", findings(s, results, edges)]
    return "\n".join(md)


def findings(s, results, edges) -> str:
    lo, hi = edges[-1]
    tok = {k: results[k]["test"][-1]["token"] for k in KINDS}
    ex = {k: results[k]["test"][-1]["exact"] for k in KINDS}
    lines = []
    for k in ("attention", "transformer"):
        verdict = "beats" if tok[k] > tok["rnn"] else "does NOT beat"
        lines.append(f"- lengths {lo}-{hi}: {k} {verdict} the final-state RNN on per-token accuracy "
                     f"({tok[k]:.3f} vs {tok['rnn']:.3f}; exact match {ex[k]:.3f} vs {ex['rnn']:.3f}).")
    n = (lo + hi) / 2 + 1  # mean target length (symbols + EOS) in the longest bucket
    lines.append(f"- exact match needs all of about {n:.0f} tokens right: per-token accuracy p would give p^{n:.0f} "
                 "if errors were independent — " + ", ".join(f"{k} {tok[k] ** n:.3f} (measured {ex[k]:.3f})"
                                                              for k in KINDS) + ".")
    first, last = results["rnn"]["test"][0]["token"], results["rnn"]["test"][-1]["token"]
    lines.append(f"- the final-state RNN goes from {first:.3f} per-token accuracy on the shortest bucket to "
                 f"{last:.3f} on the longest" + (" (it degrades with length)." if last < first else
                                                  " (no degradation with length here)."))
    speed = {k: results[k]["tokens"] / results[k]["seconds"] for k in KINDS}
    fastest = max(speed, key=speed.get)
    lines.append(f"- training speed: {', '.join(f'{k} {speed[k]:,.0f}' for k in KINDS)} target tokens/s; the "
                 f"fastest here is {fastest}" + ("." if fastest == "transformer" else
                                                  " — the transformer is NOT the fastest in this setup."))
    reached = {k: results[k]["reached"] for k in KINDS}
    got = [k for k in KINDS if reached[k]]
    lines.append(f"- target {s.target:.0%} exact match on every bucket: " + (
        ", ".join(f"{k} after {reached[k][1]:.1f} s ({reached[k][0]} steps)" for k in got) if got else "no model")
        + (f"; not reached by {', '.join(k for k in KINDS if not reached[k])}" if len(got) < len(KINDS) else "")
        + ".")
    return "\n".join(lines) + "\n"


# --- figures -----------------------------------------------------------------------------------
def plot_accuracy(results, edges, s) -> bytes:
    fig = new_figure(10, 4)
    axes = fig.subplots(1, 2)
    x = [(lo + hi) / 2 for lo, hi in edges]
    for ax, metric, title in ((axes[0], "exact", "exact match"), (axes[1], "token", "per-token accuracy")):
        for k in KINDS:
            ax.plot(x, [r[metric] for r in results[k]["test"]], marker="o", label=LABELS[k])
        ax.set_xticks(x, [f"{lo}-{hi}" for lo, hi in edges])
        ax.set_xlabel("input length")
        ax.set_ylabel(title)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Reversing random sequences: held-out accuracy by length ({s.budget:,} parameters each)")
    return png(fig)


def plot_curves(results, s) -> bytes:
    fig = new_figure(7, 4)
    ax = fig.subplots()
    for k in KINDS:
        curve = results[k]["curve"]
        ax.plot([c[1] for c in curve], [c[2] for c in curve], marker=".", label=LABELS[k])
    ax.axhline(s.target, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("training seconds")
    ax.set_ylabel("validation exact match, worst length bucket")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png(fig)


def plot_alignment(results, test) -> bytes:
    from matplotlib.ticker import MaxNLocator

    q = test[-1][0]  # a held-out sequence from the longest bucket
    src, lengths, _, _ = batch([q])
    fig = new_figure(10, 5)
    axes = fig.subplots(1, 2)
    for ax, kind in zip(axes, ("attention", "transformer")):
        model = results[kind]["model"].eval()
        with torch.no_grad():
            ids, weights = model.greedy_decode(src, lengths, max_len=len(q) + 1, bos=BOS, eos=EOS,
                                               return_attention=True)  # (1, n), (1, n, S)
        image = ax.imshow(weights[0].numpy(), cmap="viridis", aspect="auto", vmin=0, vmax=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"source position (0-{len(q) - 1} symbols, {len(q)} = EOS)")
        ax.set_ylabel("output position")
        right = ids[0, :len(q)].tolist() == q[::-1]
        ax.set_title(f"{LABELS[kind]}\noutput {'correct' if right else 'wrong'}", fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    return png(fig)
