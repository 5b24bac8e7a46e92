"""Position-wise feed-forward blocks.

- GELU MLP (GPT-2, BERT): ``down(gelu(up(x)))`` with the hidden layer 4x wider.
- SwiGLU (Shazeer 2020; Llama): ``down(silu(gate(x)) * up(x))``.

Parameter names follow the reference checkpoints (GPT-2 ``c_fc``/``c_proj``; Llama
``gate_proj``/``up_proj``/``down_proj``). Tested in tests/nn/test_blocks.py.
"""

import torch
import torch.nn.functional as F
from torch import nn


class GeluMLP(nn.Module):
    def __init__(self, dim: int, hidden: int, bias: bool = True, approximate: str = "tanh"):
        super().__init__()
        self.c_fc = nn.Linear(dim, hidden, bias=bias)
        self.c_proj = nn.Linear(hidden, dim, bias=bias)
        self.approximate = approximate  # GPT-2 uses the tanh approximation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int, bias: bool = False):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=bias)
        self.up_proj = nn.Linear(dim, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
