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

Also here: `CrossAttention` (decoder queries over encoder keys and values, the 2017
encoder-decoder) and `AdditiveAttention` (Bahdanau et al. 2014: score(s, h) =
v^T tanh(W_s s + W_h h), the first attention of sequence-to-sequence models), tested in
tests/nn/test_additive_attention.py and through tests/models/test_seq2seq.py.
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


class CrossAttention(nn.Module):
    """Multi-head attention from one sequence to another (Vaswani et al. 2017, encoder-decoder
    attention): queries from the decoder's x (B, T, C), keys and values from the encoder's
    ``memory`` (B, S, C); ``mask`` bool (B, 1, 1, S) is True at real source positions."""

    def __init__(self, dim: int, n_heads: int, bias: bool = True):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim, bias=bias)
        self.v_proj = nn.Linear(dim, dim, bias=bias)
        self.o_proj = nn.Linear(dim, dim, bias=bias)
        self.attend = sdpa_attention  # tests swap in reference_attention

    def _heads(self, proj: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, n_head, T, hd)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self._heads(self.q_proj, x), self._heads(self.k_proj, memory), self._heads(self.v_proj, memory)
        y = self.attend(q, k, v, mask, False)  # (B, n_head, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))

    def weights(self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The attention weights themselves, (B, n_head, T, S), for inspection (not the hot path)."""
        q, k = self._heads(self.q_proj, x), self._heads(self.k_proj, memory)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, n_head, T, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return scores.softmax(dim=-1)


class AdditiveAttention(nn.Module):
    """Additive ("Bahdanau") attention, the 2014 original (Bahdanau, Cho & Bengio 2014,
    "Neural Machine Translation by Jointly Learning to Align and Translate").

    A decoder state s scores every encoder state h_j with a one-hidden-layer network,

        e_j = v^T tanh(W_s s + W_h h_j + b)
        a   = softmax(e) over the real source positions (padding gets weight exactly 0)
        context = sum_j a_j h_j

    ``W_h h_j + b`` does not depend on s, so a decoder computes it once per source sentence
    (`project_keys`) and passes it to every step. Every row needs at least one real position.
    Tested in tests/nn/test_additive_attention.py against a written-out loop.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.query_proj = nn.Linear(query_dim, attn_dim, bias=False)  # W_s
        self.key_proj = nn.Linear(key_dim, attn_dim)  # W_h and b
        self.v = nn.Linear(attn_dim, 1, bias=False)  # v^T

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """W_h h_j + b for all positions: (B, S, key_dim) -> (B, S, attn_dim)."""
        return self.key_proj(keys)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None,
                projected_keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, query_dim), keys (B, S, key_dim), mask bool (B, S) True at real positions
        -> context (B, key_dim), weights (B, S)."""
        if projected_keys is None:
            projected_keys = self.project_keys(keys)  # (B, S, attn_dim)
        hidden = torch.tanh(self.query_proj(query)[:, None, :] + projected_keys)  # (B, S, attn_dim)
        scores = self.v(hidden).squeeze(-1)  # (B, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)  # (B, S)
        context = (weights[:, :, None] * keys).sum(dim=1)  # (B, key_dim)
        return context, weights
