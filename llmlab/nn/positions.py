"""Position information: learned absolute positions (GPT-2) and rotary embeddings (RoPE).

RoPE (Su et al. 2021) rotates each (x_i, x_{i+d/2}) pair of a query or key by the angle
``pos * theta^(-2i/d)``, so that q·k depends on the distance between positions only:

    rope(x) = x * cos + rotate_half(x) * sin,   rotate_half([a, b]) = [-b, a]

This is the "half split" layout of HF transformers' Llama; GGUF files store q/k weights
permuted for the interleaved layout, and weights/gguf.py undoes that permutation.
Tested in tests/nn/test_blocks.py and through the SmolLM2 parity tests.
"""

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """cos/sin tables for given positions: ``(B, T) -> 2 x (B, 1, T, head_dim)``."""

    def __init__(self, head_dim: int, theta: float = 10000.0):
        super().__init__()
        self.head_dim, self.theta = head_dim, theta  # no buffers: the module holds no state to load

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=positions.device).float()
        inv_freq = 1.0 / (self.theta ** (exponents / self.head_dim))  # (head_dim/2,)
        freqs = positions[:, :, None].float() * inv_freq[None, None, :]  # (B, T, head_dim/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, head_dim)
        return emb.cos()[:, None], emb.sin()[:, None]  # (B, 1, T, head_dim) each


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``(B, n_head, T, head_dim)`` by their positions."""
    return x * cos + rotate_half(x) * sin
