"""Normalisation layers.

LayerNorm (Ba et al. 2016) is ``torch.nn.LayerNorm``. RMSNorm (Zhang & Sennrich 2019), as
Llama uses it:

    y = w * x / sqrt(mean(x^2) + eps)

computed in float32 whatever the input dtype, then cast back (as HF transformers does).
Tested in tests/nn/test_blocks.py.
"""

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:  # one fused kernel; equal to the lines below (tests/nn/test_blocks.py)
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return self.reference(x)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)
