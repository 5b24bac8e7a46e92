"""Pre-training from scratch on a prepared token folder: causal LM for decoders, masked LM for encoders.

Two objectives share one loop (`TrainConfig.objective`):

- ``clm``, next-token prediction (Radford et al. 2018/2019), for the decoder families gpt2 and
  llama: for a window ``x = t[0:T]`` the targets are ``y = t[1:T+1]`` and the loss is the mean
  cross-entropy at every position. GPT-2 initialisation: weights N(0, 0.02), residual output
  projections N(0, 0.02/sqrt(2L)), zero biases. Each evaluation can log a sampled text.
- ``mlm``, masked-token prediction (Devlin et al. 2019), for the encoder family bert: 15% of each
  window's ordinary tokens are chosen, 80% of those replaced by [MASK], 10% by a random token,
  10% kept (llmlab.train.data.Masking); the loss is the mean cross-entropy at the chosen positions
  only. BERT initialisation (llmlab.models.encoder.init_bert). Validation masks fixed windows with
  a fixed seed, so its loss and accuracy compare across steps; each evaluation can log the model's
  top guesses at a few masked tokens.

The loop follows the GPT-2 / nanoGPT recipe:

- AdamW with decay on Linear weights only (llmlab.train.optim), warm-up + cosine learning rate
- gradient accumulation over ``grad_accum`` micro-batches, gradient-norm clipping
- bfloat16 autocast on CUDA devices that support it; float32 on CPU (exact and, at these sizes, faster)
- validation loss every ``eval_interval`` steps on a fixed sample of windows
- a checkpoint (llmlab.weights.checkpoint) with optimizer, data-sampler and RNG states, so
  ``resume=True`` continues exactly: on CPU the losses after a resume equal an uninterrupted run's.
  Resuming needs the run's architecture and tokenizer: a data folder whose tokenizer is not the
  checkpoint's (even one of the same size) is refused
- metrics.jsonl (one JSON object per step / evaluation) and loss.png, both written as we go
- data parallel over ``torchrun`` processes (llmlab.train.distributed)

Tests: tests/train/test_pretrain.py (loss goes down, resume after SIGKILL is exact, two
processes equal one, bad input, resume with another tokenizer or a damaged trainer.pt),
tests/train/test_mlm.py (the same for masked LM, masking statistics, the head against
transformers). Benchmark: bench/train.py.
"""

import io
import json
import math
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmlab.errors import LlmlabError
from llmlab.fileio import atomic_write_bytes, atomic_write_text
from llmlab.models.decoder import Decoder, DecoderConfig
from llmlab.models.encoder import BertConfig, BertForMaskedLM, init_bert
from llmlab.train import distributed
from llmlab.train.data import (
    IGNORE,
    BatchSampler,
    MaskedBatchSampler,
    Masking,
    TokenData,
    eval_starts,
    masked_windows,
    windows,
)
from llmlab.train.optim import Schedule, build_optimizer, set_lr
from llmlab.weights.checkpoint import latest_step_dir, load_checkpoint, save_checkpoint, tokenizer_difference

METRICS = "metrics.jsonl"
OBJECTIVES = {"clm": ("gpt2", "llama"), "mlm": ("bert",)}  # objective -> the model families it trains


@dataclass
class TrainConfig:
    data: str  # folder made by `llmlab data prepare`
    out: str  # run folder: checkpoints, metrics.jsonl, loss.png
    # model (DecoderConfig or BertConfig fields; vocab_size comes from the data)
    family: str | None = None  # gpt2 / llama (decoders), bert (encoder); None: gpt2 for clm, bert for mlm
    objective: str | None = None  # clm (causal LM) / mlm (masked LM); None: mlm for bert, else clm
    n_layers: int = 4
    n_heads: int = 4
    dim: int = 128
    n_kv_heads: int | None = None
    ffn_dim: int | None = None
    max_seq_len: int | None = None  # None: block_size
    # batches: an optimizer step sees batch_size * grad_accum windows of block_size tokens
    block_size: int = 64
    batch_size: int = 12
    grad_accum: int = 1
    # optimisation
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    decay_steps: int | None = None  # None: max_iters
    cooldown: float | None = None  # None: cosine decay; else constant, then linear over this last fraction
    optimizer: str = "adamw"  # adamw, or muon (Muon for the blocks' matrices, AdamW for the rest)
    muon_lr: float = 0.02  # Muon's peak rate (follows the same schedule, scaled)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0: no clipping
    # evaluation, samples, checkpoints
    eval_interval: int = 250
    eval_windows: int | None = 200  # fixed validation windows per evaluation; None: the whole split
    sample_chars: int = 200  # tokens generated at each evaluation (mlm: masked tokens shown; 0: none)
    checkpoint_interval: int | None = None  # None: eval_interval
    keep: int = 3  # newest checkpoints kept
    # run
    seed: int = 1337
    device: str = "auto"  # auto: CUDA when present, else CPU
    threads: int | None = None  # CPU threads (None: torch's default, one per core)
    resume: bool = False
    progress: bool = True
    plot: bool = True

    def __post_init__(self):
        self._resolve_objective()
        for name in ("n_layers", "n_heads", "dim", "block_size", "batch_size", "grad_accum", "max_iters",
                     "eval_interval"):
            if getattr(self, name) < 1:
                raise LlmlabError(f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.dim % self.n_heads:
            raise LlmlabError(f"dim {self.dim} is not divisible by n-heads {self.n_heads}")
        if self.max_seq_len is not None and self.block_size > self.max_seq_len:
            raise LlmlabError(f"block size {self.block_size} is longer than the model's context window "
                              f"(max-seq-len {self.max_seq_len}); lower --block-size or raise --max-seq-len")
        if self.optimizer not in ("adamw", "muon"):
            raise LlmlabError(f"unknown optimizer {self.optimizer!r}: use adamw or muon")
        if self.cooldown is not None and not 0 < self.cooldown <= 1:
            raise LlmlabError(f"cooldown is a fraction of the steps after warm-up, in (0, 1], not {self.cooldown}")
        if self.lr <= 0 or self.min_lr < 0:
            raise LlmlabError(f"learning rates must be positive (lr {self.lr}, min-lr {self.min_lr})")

    def _resolve_objective(self) -> None:
        """Fill in whichever of family / objective is None from the other; reject pairs that do not fit."""
        known = [f for families in OBJECTIVES.values() for f in families]
        if self.family is not None and self.family not in known:
            raise LlmlabError(f"unknown family {self.family!r} (choose from {', '.join(known)})")
        if self.objective is None:
            self.objective = "mlm" if self.family in OBJECTIVES["mlm"] else "clm"
        if self.objective not in OBJECTIVES:
            raise LlmlabError(f"unknown objective {self.objective!r} (clm: causal LM for decoders, "
                              "mlm: masked LM for encoders)")
        if self.family is None:
            self.family = OBJECTIVES[self.objective][0]
        if self.family not in OBJECTIVES[self.objective]:
            if self.objective == "mlm":
                raise LlmlabError(f"objective mlm (masked LM) trains an encoder, family bert, not the decoder "
                                  f"family {self.family}; pass --family bert or --preset bert-tiny")
            raise LlmlabError("objective clm (causal LM) trains a decoder (family gpt2 or llama), not the "
                              "encoder family bert; pass --objective mlm")
        if self.family == "bert" and self.n_kv_heads is not None:
            raise LlmlabError("n-kv-heads (grouped-query attention) is for the llama family, not bert")

    def model_config(self, vocab_size: int, pad_token_id: int | None = None) -> DecoderConfig | BertConfig:
        """The model this run trains; an encoder's ``pad_token_id`` is the tokenizer's [PAD] (None: none)."""
        if self.family == "bert":
            return BertConfig(vocab_size=vocab_size, hidden_size=self.dim, num_hidden_layers=self.n_layers,
                              num_attention_heads=self.n_heads, intermediate_size=self.ffn_dim or 4 * self.dim,
                              max_position_embeddings=self.max_seq_len or self.block_size, pad_token_id=pad_token_id)
        try:
            return DecoderConfig(vocab_size=vocab_size, dim=self.dim, n_layers=self.n_layers, n_heads=self.n_heads,
                                 family=self.family, n_kv_heads=self.n_kv_heads, ffn_dim=self.ffn_dim,
                                 max_seq_len=self.max_seq_len or self.block_size, tie_embeddings=True)
        except ValueError as e:
            raise LlmlabError(f"model config: {e}") from None

    def schedule(self) -> Schedule:
        return Schedule(self.lr, self.min_lr, self.warmup, self.decay_steps or self.max_iters, self.cooldown)


def config_from(preset: dict | None = None, **overrides) -> TrainConfig:
    """A TrainConfig from a preset dict with keyword overrides (None values are ignored)."""
    known = {f.name for f in fields(TrainConfig)}
    values = {**(preset or {}), **{k: v for k, v in overrides.items() if v is not None}}
    unknown = sorted(set(values) - known)
    if unknown:
        raise LlmlabError(f"unknown training settings: {', '.join(unknown)}")
    return TrainConfig(**values)


# --- model --------------------------------------------------------------------------------
RESIDUAL_OUTPUTS = ("o_proj", "c_proj", "down_proj")  # layers that write into the residual stream


def init_gpt2(model: Decoder) -> None:
    """GPT-2 initialisation: N(0, 0.02) everywhere, N(0, 0.02/sqrt(2L)) for residual outputs, zero biases."""
    std_out = 0.02 / math.sqrt(2 * model.config.n_layers)
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            std = std_out if name.endswith(RESIDUAL_OUTPUTS) and "mlp.c_fc" not in name else 0.02
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)


def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    logits = model(x)  # (B, T, vocab)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction=reduction)


@torch.no_grad()
def evaluate(model: nn.Module, tokens: np.ndarray, starts: list[int], block_size: int, device: str,
             batch: int = 64, autocast=nullcontext) -> float:
    """Mean next-token loss over the windows at ``starts`` (every target counted once)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        x, y = windows(tokens, starts[i:i + batch], block_size)  # (b, T) each
        with autocast():
            total += float(lm_loss(model, x.to(device), y.to(device), reduction="sum"))
        count += y.numel()
    model.train(was_training)
    return total / max(count, 1)


@torch.no_grad()
def sample(model: Decoder, prompt: list[int], n: int, temperature: float = 0.8, top_k: int | None = 200,
           seed: int = 0) -> list[int]:
    """``n`` new ids, feeding at most the last ``max_seq_len`` tokens each step (no cache, so the
    text can be longer than the context window). Seeded: the same model gives the same text."""
    from llmlab.generate.sampling import next_token

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    ids = list(prompt)
    window = model.config.max_seq_len
    for _ in range(n):
        x = torch.tensor([ids[-window:]], device=device)  # (1, <=T)
        logits = model(x, last_only=True)[:, -1].float()  # (1, vocab)
        ids.append(int(next_token(logits, temperature, min(top_k, logits.shape[-1]) if top_k else None,
                                  None, generator)))
    model.train(was_training)
    return ids[len(prompt):]


def mlm_loss(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy at the chosen positions only (labels != -100); the head runs at those alone."""
    chosen = labels != IGNORE  # (B, T)
    logits = model(inputs, positions=chosen)  # (n, vocab)
    return F.cross_entropy(logits.float(), labels[chosen], reduction=reduction)


@torch.no_grad()
def evaluate_mlm(model: nn.Module, tokens: np.ndarray, starts: list[int], block_size: int, masking: Masking,
                 device: str, seed: int = 0, batch: int = 64, autocast=nullcontext) -> tuple[float, float]:
    """Mean masked-token loss and accuracy (top guess = original token) over the windows at ``starts``,
    masked from a generator seeded with ``seed``: the same corruption at every evaluation."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    total, correct, count = 0.0, 0, 0
    for i in range(0, len(starts), batch):
        inputs, labels = masked_windows(tokens, starts[i:i + batch], block_size, masking, generator)  # (b, T)
        inputs, labels = inputs.to(device), labels.to(device)
        chosen = labels != IGNORE  # (b, T)
        with autocast():
            logits = model(inputs, positions=chosen).float()  # (n, vocab)
        total += float(F.cross_entropy(logits, labels[chosen], reduction="sum"))
        correct += int((logits.argmax(dim=-1) == labels[chosen]).sum())
        count += int(chosen.sum())
    model.train(was_training)
    return total / max(count, 1), correct / max(count, 1)


@torch.no_grad()
def mlm_predictions(model: nn.Module, tokens: np.ndarray, start: int, block_size: int, masking: Masking,
                    tokenizer, n: int, seed: int = 0, top: int = 3) -> list[dict]:
    """The model's ``top`` guesses at the first ``n`` chosen positions of the window at ``start``:
    [{"position", "input" (what the model saw there), "target", "top"}], tokens as readable text."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    inputs, labels = masked_windows(tokens, [start], block_size, masking, torch.Generator().manual_seed(seed))
    chosen = labels != IGNORE  # (1, T)
    guesses = model(inputs.to(device), positions=chosen.to(device)).topk(top, dim=-1).indices.tolist()  # (k, top)
    model.train(was_training)

    def text(i: int) -> str:
        return "[MASK]" if masking.added_mask and i == masking.mask_id else tokenizer.display_token(i)

    rows = zip(chosen[0].nonzero().squeeze(1).tolist(), inputs[chosen].tolist(), labels[chosen].tolist(), guesses)
    return [{"position": p, "input": text(x), "target": text(y), "top": [text(g) for g in guess]}
            for p, x, y, guess in list(rows)[:n]]


# --- the two objectives ---------------------------------------------------------------------
class CausalLM:
    """Next-token prediction for a decoder: batches (x, y) with y = x shifted by one."""

    def __init__(self, cfg: TrainConfig, data: TokenData, tokenizer):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.model_config = cfg.model_config(data.vocab_size)

    def build(self) -> Decoder:
        model = Decoder(self.model_config)
        init_gpt2(model)
        return model

    def sampler(self, tokens: np.ndarray, rank: int, world: int) -> BatchSampler:
        c = self.cfg
        return BatchSampler(tokens, c.block_size, c.batch_size, c.seed, rank, world)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return lm_loss(model, x, y)

    def evaluate(self, model: nn.Module, tokens: np.ndarray, starts: list[int], device: str, autocast) -> dict:
        return {"val_loss": evaluate(model, tokens, starts, self.cfg.block_size, device, autocast=autocast)}

    def show(self, model: nn.Module, train_tokens: np.ndarray, val_tokens: np.ndarray, val_starts: list[int]) -> dict:
        """A text sampled from the model, starting from the first training token."""
        ids = sample(model, [int(train_tokens[0])], self.cfg.sample_chars, seed=self.cfg.seed)
        return {"sample": self.tokenizer.decode(ids)}

    def describe(self) -> str | None:
        return None

    def checkpoint_meta(self) -> dict | None:
        return None


class MaskedLM:
    """BERT's masked-token prediction for an encoder: batches (inputs, labels) from `Masking`."""

    def __init__(self, cfg: TrainConfig, data: TokenData, tokenizer):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.masking = Masking.for_tokenizer(tokenizer)
        pad = tokenizer.special_tokens.get(getattr(tokenizer, "pad_token", "[PAD]"))
        self.model_config = cfg.model_config(self.masking.vocab_size, pad)

    def build(self) -> BertForMaskedLM:
        model = BertForMaskedLM(self.model_config)
        init_bert(model)
        return model

    def sampler(self, tokens: np.ndarray, rank: int, world: int) -> MaskedBatchSampler:
        c = self.cfg
        return MaskedBatchSampler(tokens, c.block_size, c.batch_size, self.masking, c.seed, rank, world)

    def loss(self, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return mlm_loss(model, inputs, labels)

    def evaluate(self, model: nn.Module, tokens: np.ndarray, starts: list[int], device: str, autocast) -> dict:
        loss, accuracy = evaluate_mlm(model, tokens, starts, self.cfg.block_size, self.masking, device,
                                      seed=self.cfg.seed, autocast=autocast)
        return {"val_loss": loss, "val_accuracy": accuracy}

    def show(self, model: nn.Module, train_tokens: np.ndarray, val_tokens: np.ndarray, val_starts: list[int]) -> dict:
        """The model's top guesses at a few masked tokens of the first validation window (or training one)."""
        c = self.cfg
        tokens, start = (val_tokens, val_starts[0]) if val_starts else (train_tokens, 0)
        return {"predictions": mlm_predictions(model, tokens, start, c.block_size, self.masking, self.tokenizer,
                                               c.sample_chars, seed=c.seed)}

    def describe(self) -> str:
        m = self.masking
        mask = (f"[MASK] is the extra id {m.mask_id}, added to the vocabulary (the tokenizer has none)"
                if m.added_mask else f"[MASK] is the tokenizer's id {m.mask_id}")
        layout = "[CLS] ... [SEP]" if m.framed else "raw token runs (the tokenizer has no [CLS]/[SEP])"
        return (f"masked LM: 15% of each window's tokens (80% [MASK], 10% random, 10% kept); {mask}; "
                f"windows are {layout}")

    def checkpoint_meta(self) -> dict:
        return {"objective": "mlm", "mask_token_id": self.masking.mask_id,
                "mask_token_added": self.masking.added_mask}


TASKS = {"clm": CausalLM, "mlm": MaskedLM}


# --- state for exact resume ---------------------------------------------------------------
def rng_state() -> dict:
    np_state = np.random.get_state(legacy=False)
    state = {"python": _listify(random.getstate()), "torch": torch.get_rng_state(),
             "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                       "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                       "gauss": float(np_state["gauss"])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    v = state["python"]
    random.setstate((v[0], tuple(v[1]), v[2]))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937", "state": {"key": n["key"].numpy().astype(np.uint32),
                                                             "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _listify(x):
    return [_listify(v) for v in x] if isinstance(x, tuple) else x


def read_metrics(path: Path, up_to_step: int | None = None) -> list[dict]:
    """The records of a metrics.jsonl (a torn last line is skipped), optionally only to a step."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if up_to_step is None or r.get("step", 0) <= up_to_step:
            records.append(r)
    return records


def plot_losses(records: list[dict], path: Path, title: str = "") -> None:
    """loss.png: training loss per step and validation loss at each evaluation (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), lw=0.8, alpha=0.8, label="train (batch)")
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


# --- the loop -----------------------------------------------------------------------------
def train(cfg: TrainConfig, log=print) -> dict:
    """Run (or resume) a pre-training job; returns a summary dict (final losses, step, speed)."""
    from tqdm import tqdm

    d = distributed.setup(cfg.device)
    try:
        return _train(cfg, d, log if d.main else (lambda *a, **k: None), tqdm)
    finally:
        distributed.teardown(d)


def _train(cfg: TrainConfig, d: distributed.Dist, log, tqdm) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = TokenData(cfg.data)
    train_tokens, val_tokens = data.split("train"), data.split("val")
    tokenizer = data.tokenizer()
    task = TASKS[cfg.objective](cfg, data, tokenizer)
    mcfg = task.model_config
    out = Path(cfg.out).expanduser()
    sampler = task.sampler(train_tokens, d.rank, d.world)
    if 0 < len(val_tokens) < cfg.block_size + 1:
        raise LlmlabError(f"{data.folder}: the validation split has {len(val_tokens)} tokens, fewer than one "
                          f"window of block size + 1 = {cfg.block_size + 1}; lower --block-size or prepare "
                          "with a larger --val-fraction")
    val_starts = eval_starts(len(val_tokens), cfg.block_size, cfg.eval_windows) if len(val_tokens) else []

    torch.manual_seed(cfg.seed)
    model = task.build()
    model.to(d.device)
    optimizer = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2), cfg.muon_lr)
    schedule = cfg.schedule()
    step = 0
    existing = latest_step_dir(out) if out.is_dir() else None
    if existing is not None and not cfg.resume:
        raise LlmlabError(f"{out}: already holds a checkpoint ({existing.name}); pass --resume to continue it "
                          "or choose another --out")
    if cfg.resume and existing is not None:
        ckpt = load_checkpoint(out, trainer=True, expect=mcfg)
        state = ckpt.trainer
        difference = tokenizer_difference(ckpt, tokenizer)
        if difference:
            trained_on = state.get("config", {}).get("data")
            raise LlmlabError(f"{data.folder}: its tokenizer is not the one {out} was trained with ({difference}); "
                              f"resume with {f'--data {trained_on}' if trained_on else 'the data it was trained on'}"
                              " or a folder prepared with the same tokenizer")
        missing = [k for k in ("optimizer", "sampler", "rng", "step") if k not in state]
        if missing:
            raise LlmlabError(f"{ckpt.path / 'trainer.pt'}: not a pre-training state (no {', '.join(missing)})")
        model.load_state_dict(ckpt.model.state_dict())
        trained_with = state.get("config", {}).get("optimizer", "adamw")
        if trained_with != cfg.optimizer:
            raise LlmlabError(f"{out}: the checkpoint was trained with --optimizer {trained_with}, not "
                              f"{cfg.optimizer}; resume with the optimizer it was trained with")
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        set_rng_state(state["rng"])
        step = int(state["step"])
        if d.main:  # forget what a killed run logged after its last checkpoint
            kept = read_metrics(out / METRICS, up_to_step=step)
            atomic_write_text(out / METRICS, "".join(json.dumps(r) + "\n" for r in kept))
        log(f"resuming {out} from {ckpt.path.name} (step {step})")
    elif cfg.resume:
        log(f"{out}: no checkpoint yet, starting from scratch")

    raw = model
    if d.enabled:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[d.device] if "cuda" in d.device else None)
    bf16 = d.device.startswith("cuda") and torch.cuda.is_bf16_supported()
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext
    tokens_per_step = cfg.batch_size * cfg.grad_accum * cfg.block_size
    ckpt_every = cfg.checkpoint_interval or cfg.eval_interval
    log(f"model: {cfg.family}, {raw.num_parameters():,} parameters; {len(train_tokens):,} train / "
        f"{len(val_tokens):,} validation tokens; {tokens_per_step:,} tokens per step on {d.device}"
        f"{' x ' + str(d.world) + ' processes' if d.enabled else ''}{' (bf16 autocast)' if bf16 else ''}")
    if task.describe():
        log(task.describe())

    loss_value, val_loss, val_accuracy = float("nan"), None, None
    if step:  # resumed: the figures logged so far stand until new ones come (none when already done)
        for r in read_metrics(out / METRICS, up_to_step=step):
            loss_value = r.get("loss", loss_value)
            val_loss, val_accuracy = r.get("val_loss", val_loss), r.get("val_accuracy", val_accuracy)
        if step >= cfg.max_iters:
            log(f"{out}: already trained to step {step} (--max-iters {cfg.max_iters}); raise --max-iters to "
                "train it further")
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
    metrics = open(out / METRICS, "a", encoding="utf-8") if d.main else None
    bar = tqdm(total=cfg.max_iters, initial=step, disable=not (cfg.progress and d.main) or step >= cfg.max_iters,
               unit="step", dynamic_ncols=True, file=sys.stderr)
    start, start_step = time.perf_counter(), step
    model.train()
    while step < cfg.max_iters:
        lr = schedule.lr_at(step)
        set_lr(optimizer, lr)
        total = 0.0
        for micro in range(cfg.grad_accum):
            x, y = sampler.next()  # (B_local, T) each
            x, y = x.to(d.device), y.to(d.device)
            sync = nullcontext() if not d.enabled or micro == cfg.grad_accum - 1 else model.no_sync()
            with sync:
                with autocast():
                    loss = task.loss(model, x, y) / cfg.grad_accum
                loss.backward()
            total += loss.item()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss_value = distributed.mean(total, d)
        elapsed = time.perf_counter() - start
        if d.main:
            metrics.write(json.dumps({"step": step, "loss": loss_value, "lr": lr, "time": round(elapsed, 3)}) + "\n")
            metrics.flush()
        tok_s = (step - start_step) * tokens_per_step / max(elapsed, 1e-9)
        bar.set_postfix_str(f"loss {loss_value:.4f} | {tok_s:,.0f} tok/s", refresh=False)
        bar.update(1)
        last = step == cfg.max_iters
        if d.main and (step % cfg.eval_interval == 0 or last):
            record = {"step": step}
            if val_starts:
                record |= task.evaluate(raw, val_tokens, val_starts, d.device, autocast)
                val_loss, val_accuracy = record["val_loss"], record.get("val_accuracy")
            if cfg.sample_chars > 0:
                record |= task.show(raw, train_tokens, val_tokens, val_starts)
            metrics.write(json.dumps(record, ensure_ascii=False) + "\n")
            metrics.flush()
            bar.write(f"step {step}: train loss {loss_value:.4f}"
                      + (f", validation loss {val_loss:.4f}" if val_loss is not None else "")
                      + (f", masked-token accuracy {val_accuracy:.1%}" if val_accuracy is not None else ""))
        if d.main and (step % ckpt_every == 0 or last):
            trainer = {"optimizer": optimizer.state_dict(), "sampler": sampler.state_dict(), "rng": rng_state(),
                       "step": step, "config": asdict(cfg)}
            save_checkpoint(out, step, raw, tokenizer, trainer, keep=cfg.keep, extra=task.checkpoint_meta())
            if cfg.plot:
                plot_losses(read_metrics(out / METRICS), out / "loss.png", f"{cfg.family} on {data.folder.name}")
        if step % ckpt_every == 0 or last:
            distributed.barrier(d)
    bar.close()
    if metrics:
        metrics.close()
    wall = time.perf_counter() - start
    done = step - start_step
    return {"step": step, "steps_run": done, "rank": d.rank, "objective": cfg.objective,
            "loss": loss_value, "val_loss": val_loss,
            **({"val_accuracy": val_accuracy} if cfg.objective == "mlm" else {}), "seconds": wall,
            "tokens_per_second": done * tokens_per_step / wall if wall > 0 else 0.0,
            "parameters": raw.num_parameters(), "out": str(out)}
