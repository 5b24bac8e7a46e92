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
without restarts). The rate is a pure function of the step, so resuming needs only the step.
Tests: tests/train/test_pretrain.py (groups, schedule end points).
"""

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Schedule:
    lr: float = 1e-3  # peak learning rate
    min_lr: float = 1e-4  # floor reached at decay_steps
    warmup: int = 100  # steps of linear warm-up
    decay_steps: int = 2000  # step at which the cosine reaches min_lr

    def lr_at(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based)."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if step >= self.decay_steps:
            return self.min_lr
        progress = (step - self.warmup) / max(1, self.decay_steps - self.warmup)  # 0 -> 1
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
    """AdamW over `param_groups`; the multi-tensor (``foreach``) kernel on CPU, fused on CUDA."""
    groups = param_groups(model, weight_decay)
    for g in groups:
        g.pop("names")
    on_cuda = next(model.parameters()).is_cuda
    fused = on_cuda if fused is None else fused
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused, foreach=None if fused else True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr
