"""Int8 weight-only layers: the fast, low-memory path for generating on a CPU.

Decoding one token reads every weight once, so on a CPU its speed is set by memory
traffic, not arithmetic. Storing each weight row as int8 with one scale,

    w[i, :] ~= s[i] * q[i, :],   s[i] = max|w[i, :]| / 127,   q = round(w / s)

reads a quarter of the bytes of float32. For a few rows (generating) the matmul is
PyTorch's CPU kernel ``torch._weight_int8pack_mm`` (activations in bfloat16, accumulated
in float32); for many rows (a prompt) arithmetic dominates, so the weight is dequantized
and multiplied in float32. The attention and MLP blocks also fuse their input
projections (q/k/v, gate/up) into one matmul each, since at one token per step the fixed
cost of each call matters as much as its size.

The float32 modules stay the reference: these are built from them and tested close to
them (tests/nn/test_blocks.py); the benchmark reports the perplexity cost (bench/models.py).
"""

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.nn.attention import Attention, sdpa_attention
from llmlab.nn.feedforward import SwiGLU
from llmlab.nn.positions import apply_rope


class Int8Linear(nn.Module):
    """``y = x W^T`` with W stored as int8 rows and bfloat16 scales (no bias)."""

    def __init__(self, weight: torch.Tensor, rows_per_chunk: int = 4096):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        q = torch.empty(weight.shape, dtype=torch.int8)
        scale = torch.empty(self.out_features)
        with torch.no_grad():
            for start in range(0, self.out_features, rows_per_chunk):  # chunks bound the float32 temporaries
                w = weight[start:start + rows_per_chunk].float()
                s = w.abs().amax(dim=1).clamp(min=1e-12) / 127  # (rows,)
                q[start:start + rows_per_chunk] = torch.round(w / s[:, None])
                scale[start:start + rows_per_chunk] = s
        self.register_buffer("weight_int8", q)  # (out, in)
        self.register_buffer("scale", scale.to(torch.bfloat16))  # (out,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] > 16:  # many rows (a prompt): compute-bound, so dequantize and use float32 matmul
            return F.linear(x, self.weight_int8.float() * self.scale.float()[:, None])
        y = torch._weight_int8pack_mm(rows.to(torch.bfloat16), self.weight_int8, self.scale)
        return y.float().view(*x.shape[:-1], self.out_features)


class Int8Embedding(nn.Module):
    """Token embedding that shares the int8 rows and scales of a (tied) `Int8Linear` head."""

    def __init__(self, head: Int8Linear):
        super().__init__()
        self.head = [head]  # a plain list: the buffers are registered (and counted) in the head only

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        head = self.head[0]
        return head.weight_int8[ids].float() * head.scale[ids].float()[..., None]  # (B, T, C)


class Int8Attention(nn.Module):
    """`Attention` with q/k/v fused into one int8 projection."""

    def __init__(self, attn: Attention):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = attn.n_heads, attn.n_kv_heads, attn.head_dim
        self.qkv_proj = Int8Linear(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        self.o_proj = Int8Linear(attn.o_proj.weight)
        self.sizes = [self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim, self.n_kv_heads * self.head_dim]

    def forward(self, x, rope=None, mask=None, cache=None, layer: int = 0):
        B, T, _ = x.shape
        q, k, v = self.qkv_proj(x).split(self.sizes, dim=-1)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, n_head, T, hd)
        k = k.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, n_kv, T, hd)
        v = v.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, n_kv, T, hd)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, n_kv, S, hd)
        y = sdpa_attention(q, k, v, mask, mask is None and T > 1)  # (B, n_head, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


class Int8SwiGLU(nn.Module):
    """`SwiGLU` with gate/up fused into one int8 projection."""

    def __init__(self, mlp: SwiGLU):
        super().__init__()
        self.hidden = mlp.gate_proj.out_features
        self.gate_up_proj = Int8Linear(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))
        self.down_proj = Int8Linear(mlp.down_proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).split(self.hidden, dim=-1)
        return self.down_proj(F.silu(gate) * up)
