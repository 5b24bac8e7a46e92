"""AdamW with decoupled weight decay on the right parameters, and the warm-up + cosine schedule.

Weight decay (Loshchilov & Hutter 2019, AdamW) shrinks weights towards zero separately from the
gradient step. It is applied to the matrices that multiply activations (every ``nn.Linear``
weight: attention and MLP projections, an untied output head) and NOT to biases, normalisation
gains (LayerNorm / RMSNorm weights and biases) or embedding tables (token and learned position
embeddings; a tied output head is the token embedding, so it is not decayed either). This is the
split of GPT-2-style training code; `param_groups` states it per parameter name, so any model
(decoder, encoder, a fine-tuning head) can use it.

Learning rate: linear warm-up from 0 to ``lr`` over ``warmup`` steps, then half a cosine from
``lr`` down to ``min_lr`` at ``decay_steps``, constant after (Loshchilov & Hutter 2017, SGDR
without restarts); or, with ``cooldown``, warm-up, a constant stretch and a linear fall to
``min_lr`` over the last ``cooldown`` fraction of the steps ("warmup-stable-decay", Hägele et
al. 2024), which reaches a lower loss than cosine in a short run. The rate is a pure function of
the step, so resuming needs only the step.

Muon (Jordan et al. 2024, "MomentUm Orthogonalized by Newton-Schulz") for the weight matrices
of the transformer blocks: the Nesterov momentum of a matrix's gradient is replaced by the
nearest semi-orthogonal matrix (its singular values pushed to ~1 by five Newton-Schulz steps),
so every direction of the update moves at the same rate; the step is scaled by
``sqrt(max(1, rows/cols))``. Embeddings, the output head, norms and biases keep AdamW
(`build_optimizer`). Matrices of one shape are orthogonalised together in one batched product,
in bfloat16 where the hardware multiplies it natively (as the reference does), else float32.
Tests: tests/train/test_pretrain.py (groups, schedule end points), tests/train/test_optim.py
(Muon equals ``torch.optim.Muon``; the two-optimizer state survives a save and load).
"""

import math
import re
from dataclasses import dataclass

import torch
from torch import nn

from llmlab.errors import LlmlabError


@dataclass
class Schedule:
    lr: float = 1e-3  # peak learning rate
    min_lr: float = 1e-4  # floor reached at decay_steps
    warmup: int = 100  # steps of linear warm-up
    decay_steps: int = 2000  # step at which the rate reaches min_lr
    cooldown: float | None = None  # None: cosine decay; else hold lr, then fall linearly over this last fraction

    def lr_at(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based)."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if step >= self.decay_steps:
            return self.min_lr
        progress = (step - self.warmup) / max(1, self.decay_steps - self.warmup)  # 0 -> 1
        if self.cooldown is not None:  # warm-up, stable, decay
            hold = 1.0 - self.cooldown
            left = 1.0 if progress < hold else 1.0 - (progress - hold) / max(self.cooldown, 1e-12)
            return self.min_lr + left * (self.lr - self.min_lr)
        return self.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (self.lr - self.min_lr)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """[decayed, not decayed] AdamW groups: decay on ``nn.Linear`` weights only (see module doc).
    Each group carries ``names`` for inspection; shared (tied) tensors appear once."""
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay, seen = ([], []), ([], []), set()
    for name, p in model.named_parameters():  # named_parameters yields a tied tensor once
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        group = decay if id(p) in linear_weights and id(p) not in embeddings else no_decay
        group[0].append(p)
        group[1].append(name)
    return [{"params": decay[0], "names": decay[1], "weight_decay": weight_decay},
            {"params": no_decay[0], "names": no_decay[1], "weight_decay": 0.0}]


def build_adamw(model: nn.Module, lr: float, weight_decay: float = 0.1,
                betas: tuple[float, float] = (0.9, 0.95), fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over `param_groups`, by the fused kernel (one pass over all tensors, on CPU and CUDA;
    ``fused=False``: the multi-tensor ``foreach`` kernel)."""
    groups = param_groups(model, weight_decay)
    for g in groups:
        g.pop("names")
    fused = True if fused is None else fused
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused, foreach=None if fused else True)


def set_lr(optimizer, lr: float) -> None:
    """Set every group's rate to ``lr`` times the group's ``lr_scale`` (1 unless set: Muon's groups
    carry muon_lr / lr, so one schedule drives both optimizers)."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


# --- Muon -----------------------------------------------------------------------------------
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # quintic Newton-Schulz iteration of the reference


def orthogonalize(G: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Approximately the semi-orthogonal factor U V^T of each matrix in G (..., m, n) with m <= n:
    normalise to spectral norm <= 1, then iterate X <- aX + (bA + cA^2)X with A = X X^T, which
    drives every singular value towards 1 (to within ~[0.7, 1.2], enough for an update direction)."""
    a, b, c = NS_COEFFICIENTS
    X = G / (G.norm(dim=(-2, -1), keepdim=True) + eps)
    for _ in range(steps):
        A = X @ X.mT  # (..., m, m): the small side
        X = a * X + (b * A + c * A @ A) @ X
    return X


class Muon(torch.optim.Optimizer):
    """Muon for 2-D parameters: ``buf = m * buf + (1 - m) * grad``; ``u = (1 - m) * grad + m * buf``
    (Nesterov); ``p -= lr * sqrt(max(1, rows/cols)) * orthogonalize(u)``, after the decoupled
    weight decay ``p *= 1 - lr * weight_decay``. ``dtype`` is the precision of the
    Newton-Schulz products (None: bfloat16 on CUDA or AMX CPUs, else float32)."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                 ns_steps: int = 5, dtype: torch.dtype | None = None):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, ns_steps=ns_steps))
        for g in self.param_groups:
            for p in g["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon updates matrices only, got a parameter of shape {tuple(p.shape)}")
        if dtype is None:
            from llmlab.models.encoder import bf16_is_fast

            dtype = torch.bfloat16 if bf16_is_fast() else torch.float32
        self.dtype = dtype

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for g in self.param_groups:
            by_shape: dict[tuple, list] = {}  # (m, n) with m <= n -> [(param, update)]
            for p in g["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - g["momentum"])  # an average of past gradients
                u = p.grad.lerp(buf, g["momentum"])  # Nesterov: look ahead along it
                by_shape.setdefault(tuple(sorted(u.shape)), []).append((p, u.mT if u.shape[0] > u.shape[1] else u))
            for items in by_shape.values():
                stacked = torch.stack([u for _, u in items]).to(self.dtype)  # (k, m, n)
                directions = orthogonalize(stacked, g["ns_steps"]).to(items[0][0].dtype)
                for (p, _), d in zip(items, directions):
                    if d.shape != p.shape:
                        d = d.mT
                    p.mul_(1 - g["lr"] * g["weight_decay"])
                    p.add_(d, alpha=-g["lr"] * math.sqrt(max(1.0, p.shape[0] / p.shape[1])))
        return loss


class Chain:
    """Several optimizers stepped as one, with the interface a training loop uses
    (param_groups, step, zero_grad, state_dict, load_state_dict)."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"chain": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        states = state.get("chain")
        if states is None or len(states) != len(self.optimizers):
            raise LlmlabError("the checkpoint's optimizer state is of another optimizer set-up "
                              "(e.g. adamw vs muon); resume with the optimizer it was trained with")
        for o, s in zip(self.optimizers, states):
            o.load_state_dict(s)


BLOCK_MATRIX = re.compile(r"(^|\.)layers?\.\d+\.")  # a weight inside a transformer block


def build_optimizer(model: nn.Module, name: str = "adamw", lr: float = 1e-3, weight_decay: float = 0.1,
                    betas: tuple[float, float] = (0.9, 0.95), muon_lr: float = 0.02, muon_momentum: float = 0.95):
    """``adamw``: `build_adamw`. ``muon``: Muon (at ``muon_lr``, no weight decay) for the 2-D
    weights inside the transformer blocks, AdamW (`param_groups`) for everything else; `set_lr`
    scales both with one schedule (Muon's groups carry ``lr_scale = muon_lr / lr``)."""
    if name == "adamw":
        return build_adamw(model, lr, weight_decay, betas)
    if name != "muon":
        raise LlmlabError(f"unknown optimizer {name!r}: use adamw or muon")
    matrices = [p for n, p in model.named_parameters()
                if p.requires_grad and p.ndim == 2 and BLOCK_MATRIX.search(n)]
    if not matrices:
        raise LlmlabError("muon found no weight matrices inside transformer blocks to update; use adamw")
    chosen = {id(p) for p in matrices}
    groups = []
    for g in param_groups(model, weight_decay):
        params = [p for p in g["params"] if id(p) not in chosen]
        if params:
            groups.append({"params": params, "weight_decay": g["weight_decay"]})
    adamw = torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
    muon = Muon([{"params": matrices, "lr_scale": muon_lr / lr}], lr=muon_lr, momentum=muon_momentum)
    return Chain(muon, adamw)

