"""Position information: learned absolute positions (GPT-2), rotary embeddings (RoPE) and the
2017 transformer's fixed sinusoids (`sinusoidal_positions`).

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


def sinusoidal_positions(n_positions: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The fixed position vectors of the original transformer (Vaswani et al. 2017, section 3.5):

        PE[pos, 2i] = sin(pos / base^(2i/dim)),   PE[pos, 2i+1] = cos(pos / base^(2i/dim))

    returned as (n_positions, dim), added to the token embeddings. ``dim`` must be even."""
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even dim, got {dim}")
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (n_positions, 1)
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    angles = pos * inv_freq[None, :]  # (n_positions, dim/2)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).reshape(n_positions, dim)  # sin, cos interleaved
