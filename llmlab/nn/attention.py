"""Multi-head self-attention with grouped-query heads, causal masking and a KV cache.

Scaled dot-product attention (Vaswani et al. 2017):

    attention(Q, K, V) = softmax(Q K^T / sqrt(d_head) + mask) V

With grouped-query attention (Ainslie et al. 2023) ``n_kv_heads`` key/value heads are
shared by ``n_heads / n_kv_heads`` query heads each (SmolLM2: 9 query heads, 3 kv heads);
``n_kv_heads == n_heads`` is ordinary multi-head attention (GPT-2, BERT).

The fast path is ``torch.nn.functional.scaled_dot_product_attention``; `reference_attention`
writes the equation out and is tested equal (tests/nn/test_blocks.py). During generation a
`KVCache` keeps every layer's keys and values so each new token attends to the past
without recomputing it.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.nn.positions import apply_rope


class KVCache:
    """Keys and values of all layers for positions ``0 .. length-1``, preallocated to ``max_len``."""

    def __init__(self, n_layers: int, batch: int, n_kv_heads: int, head_dim: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        shape = (n_layers, batch, n_kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0  # positions filled; the decoder advances it after all layers ran
        self.max_len = max_len

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's (B, n_kv, T, hd) keys/values; return all so far, (B, n_kv, S, hd)."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions, {end} needed")
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


def sdpa_attention(q, k, v, mask, causal):
    """q (B, n_head, T, hd), k/v (B, n_kv, S, hd), mask bool (B, 1, T, S) or None."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                          enable_gqa=q.shape[1] != k.shape[1])


def reference_attention(q, k, v, mask, causal):
    """The same, written out: scores, mask, softmax, weighted sum."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (B, n_head, S, hd)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, n_head, T, S)
    if causal:
        T, S = scores.shape[-2:]
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v  # (B, n_head, T, hd)


class Attention(nn.Module):
    """Self-attention with separate q/k/v/o projections (names as in Llama checkpoints)."""

    def __init__(self, dim: int, n_heads: int, n_kv_heads: int, head_dim: int, bias: bool = False):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, head_dim
        self.q_proj = nn.Linear(dim, n_heads * head_dim, bias=bias)
        self.k_proj = nn.Linear(dim, n_kv_heads * head_dim, bias=bias)
        self.v_proj = nn.Linear(dim, n_kv_heads * head_dim, bias=bias)
        self.o_proj = nn.Linear(n_heads * head_dim, dim, bias=bias)
        self.attend = sdpa_attention  # tests swap in reference_attention

    def forward(self, x, rope=None, mask=None, cache: KVCache | None = None, layer: int = 0):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, n_head, T, hd)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, n_kv, T, hd)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, n_kv, T, hd)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, n_kv, S, hd) with S = past + T
        causal = mask is None and T > 1  # the decoder passes a mask whenever plain causal is not enough
        y = self.attend(q, k, v, mask, causal)  # (B, n_head, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))
