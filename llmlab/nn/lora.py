"""LoRA: low-rank adapters on frozen linear layers (Hu et al. 2021, "LoRA: Low-Rank
Adaptation of Large Language Models").

A frozen weight W (out, in) is adapted by a trainable low-rank product:

    y = x W^T + b + (alpha / r) * dropout(x) A^T B^T,    A: (r, in), B: (out, r)

A starts Kaiming-uniform and B at zero, so an adapted model starts out exactly equal to its
base. Only A and B are trained: for SmolLM2 with r=8 on q_proj and v_proj that is 0.46M
numbers next to 135M frozen ones. After training, ``merge_lora`` folds (alpha / r) B A into W
and puts plain ``nn.Linear`` layers back, so the merged model runs at the base model's speed.

Adapters are saved apart from the base, in a folder: ``adapter.safetensors`` (the A and B
tensors only, under the adapted module's name) and ``adapter_config.json`` (r, alpha, dropout,
targets and the base model's name). ``load_adapter`` checks every shape against the model
before touching it, so an adapter made for a different base is one clear error.

Tests: tests/nn/test_lora.py (zero start equals the base, merged equals unmerged, only A/B
train, save/load round trip, the formula above written out, a mismatched base refused).
"""

import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from llmlab.errors import LlmlabError
from llmlab.fileio import atomic_write_bytes, atomic_write_text, read_text

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
DEFAULT_TARGETS = ("q_proj", "v_proj")


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update (alpha / r) B A."""

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        super().__init__()
        if r < 1:
            raise LlmlabError(f"LoRA rank must be at least 1, not {r}")
        self.base = base
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)
        self.r, self.alpha = r, alpha
        self.scale = alpha / r
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))  # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=w.dtype, device=w.device))  # (out, r)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.dropout(x) @ self.lora_A.T  # (..., r)
        return self.base(x) + (low @ self.lora_B.T) * self.scale  # (..., out)

    def delta_weight(self) -> torch.Tensor:
        """The update the adapter adds to W: (alpha / r) B A, shape (out, in)."""
        return (self.lora_B @ self.lora_A) * self.scale

    def merged(self) -> nn.Linear:
        """The base layer with the update folded into its weight."""
        with torch.no_grad():
            self.base.weight += self.delta_weight().to(self.base.weight.dtype)
        return self.base

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"


def _matches(name: str, targets) -> bool:
    return name.rsplit(".", 1)[-1] in targets


def apply_lora(model: nn.Module, targets=DEFAULT_TARGETS, r: int = 8, alpha: float = 16.0,
               dropout: float = 0.0) -> list[str]:
    """Freeze every parameter of ``model`` and wrap each ``nn.Linear`` whose own name is in
    ``targets`` (e.g. ``q_proj``) in a `LoRALinear`. Returns the wrapped modules' names."""
    targets = tuple(targets)
    for p in model.parameters():
        p.requires_grad_(False)
    found = [(name, m) for name, m in model.named_modules() if _matches(name, targets)]
    not_linear = [(name, m) for name, m in found if type(m) is not nn.Linear]
    if not_linear:
        raise LlmlabError(f"LoRA needs float nn.Linear layers, but {not_linear[0][0]} is "
                          f"{type(not_linear[0][1]).__name__} (load the model in fp32)")
    if not found:
        linears = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise LlmlabError(f"no layer named {', '.join(targets)} in this model "
                          f"(its linear layers: {', '.join(linears)})")
    for name, linear in found:
        parent, _, child = name.rpartition(".")
        adapted = LoRALinear(linear, r, alpha, dropout).train(linear.training)  # an eval model stays in eval
        setattr(model.get_submodule(parent) if parent else model, child, adapted)
    return [name for name, _ in found]


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the plain ``nn.Linear`` back, in place."""
    for name, m in lora_modules(model).items():
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, m.merged())
    return model


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The A and B tensors by name: ``layers.0.self_attn.q_proj.lora_A`` (r, in) / ``.lora_B`` (out, r)."""
    out = {}
    for name, m in lora_modules(model).items():
        out[f"{name}.lora_A"] = m.lora_A.detach().float().contiguous().cpu()
        out[f"{name}.lora_B"] = m.lora_B.detach().float().contiguous().cpu()
    return out


def save_adapter(model: nn.Module, directory: str | Path, base_model: str) -> Path:
    """Write the adapter (A/B tensors + their settings) into ``directory``; the base is not copied."""
    mods = lora_modules(model)
    if not mods:
        raise LlmlabError("this model has no LoRA adapters to save")
    first = next(iter(mods.values()))
    folder = Path(directory)
    config = {"format": "llmlab-lora", "r": first.r, "alpha": first.alpha,
              "dropout": first.dropout.p if isinstance(first.dropout, nn.Dropout) else 0.0,
              "targets": sorted({name.rsplit(".", 1)[-1] for name in mods}), "base_model": str(base_model)}
    atomic_write_bytes(folder / ADAPTER_WEIGHTS, save(adapter_state(model)))
    atomic_write_text(folder / ADAPTER_CONFIG, json.dumps(config, indent=2) + "\n")
    return folder


def read_adapter(directory: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(adapter_config.json, tensors) of an adapter folder, with one-line errors."""
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise LlmlabError(f"{folder}: no such adapter folder (expected {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS})")
    try:
        config = json.loads(read_text(folder / ADAPTER_CONFIG))
    except json.JSONDecodeError as e:
        raise LlmlabError(f"{folder / ADAPTER_CONFIG}: not valid JSON ({e.msg}, line {e.lineno})") from None
    missing = [k for k in ("r", "alpha", "targets") if k not in config] if isinstance(config, dict) else ["all"]
    if missing:
        raise LlmlabError(f"{folder / ADAPTER_CONFIG}: not a LoRA adapter config (missing {', '.join(missing)})")
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
    wrong = [k for k, ok in (("r", isinstance(config["r"], int) and not isinstance(config["r"], bool)
                              and config["r"] >= 1),
                             ("alpha", number(config["alpha"])),
                             ("dropout", number(config.get("dropout", 0.0)) and 0 <= config.get("dropout", 0.0) < 1),
                             ("targets", isinstance(config["targets"], list)
                              and all(isinstance(t, str) for t in config["targets"]))) if not ok]
    if wrong:
        raise LlmlabError(f"{folder / ADAPTER_CONFIG}: bad {', '.join(wrong)} (r: a whole number >= 1, alpha: a "
                          "number, dropout: in [0, 1), targets: a list of layer names)")
    if not (folder / ADAPTER_WEIGHTS).is_file():
        raise LlmlabError(f"{folder}: no {ADAPTER_WEIGHTS} here")
    try:
        tensors = load_file(folder / ADAPTER_WEIGHTS)
    except (SafetensorError, OSError) as e:
        raise LlmlabError(f"{folder / ADAPTER_WEIGHTS}: not a readable safetensors file ({e})") from None
    return config, tensors


def load_adapter(model: nn.Module, directory: str | Path, merge: bool = False) -> dict:
    """Put the adapter saved in ``directory`` onto ``model`` (its base), in place; with ``merge``
    fold it in straight away. Every tensor is checked against the model first: an adapter for a
    different base raises `LlmlabError` and leaves the model as it was. Returns the adapter config."""
    config, tensors = read_adapter(directory)
    r = int(config["r"])
    base = config.get("base_model", "?")
    modules = sorted({k.rsplit(".", 1)[0] for k in tensors})
    for name in modules:
        try:
            linear = model.get_submodule(name)
        except AttributeError:
            raise LlmlabError(f"{directory}: adapter for base '{base}' does not fit this model "
                              f"(it has no layer {name})") from None
        if not isinstance(linear, nn.Linear):
            raise LlmlabError(f"{directory}: {name} is {type(linear).__name__}, not a float linear layer "
                              "(load the base model in fp32)")
        want = {"lora_A": (r, linear.in_features), "lora_B": (linear.out_features, r)}
        for part, shape in want.items():
            t = tensors.get(f"{name}.{part}")
            if t is None or tuple(t.shape) != shape:
                got = "missing" if t is None else f"shape {tuple(t.shape)}"
                raise LlmlabError(f"{directory}: adapter for base '{base}' does not fit this model: "
                                  f"{name}.{part} is {got}, this model needs {shape}")
    wrapped = apply_lora(model, config["targets"], r, float(config["alpha"]), float(config.get("dropout", 0.0)))
    if sorted(wrapped) != modules:
        extra = sorted(set(wrapped) - set(modules))
        merge_lora(model)  # the B's are still zero: this only unwraps them again
        raise LlmlabError(f"{directory}: adapter for base '{base}' does not fit this model "
                          f"(no tensors for {', '.join(extra[:3])}{'...' if len(extra) > 3 else ''})")
    with torch.no_grad():
        for name, m in lora_modules(model).items():
            m.lora_A.copy_(tensors[f"{name}.lora_A"])
            m.lora_B.copy_(tensors[f"{name}.lora_B"])
    if merge:
        merge_lora(model)
    return config
