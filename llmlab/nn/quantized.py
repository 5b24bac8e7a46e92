"""Weight-only int8 and int4 layers: the fast, low-memory path for generating on a CPU.

Decoding one token reads every weight once, so on a CPU its speed is set by memory
traffic, not arithmetic. Two storage formats cut that traffic:

- int8, one scale per row:      w[i, :] ~= s[i] * q[i, :],  s[i] = max|w[i, :]| / 127
- int4, per group of 32 inputs: w[i, g] ~= s * q + m,  q in 0..15, m = min, s = (max - min) / 15

The int4 format is the one GGUF's Q4_1 uses, so Q4_1 weights convert to it without loss
(each Q4_1 block holds q = 0 and q = 15, so min/max give back its d and m; only the
bfloat16 rounding of s and m remains). For a few rows (generating) the matmul is
PyTorch's CPU kernel ``torch._weight_int8pack_mm`` (activations in bfloat16, accumulated
in float32, returned in bfloat16; the output head refines its top 64 in float32); for many
rows (a prompt) arithmetic dominates, so the weight is dequantized and multiplied in float32.
Dequantizing costs about as much as the matmul for a prompt of a few dozen tokens, so a job
that reads many short prompts (classifying texts one by one) can hold the float32 weights for
its duration: ``with float_weights(model): ...`` gives the same numbers, faster, for the memory
of the float32 weights while it lasts. Scoring text rather than generating it wants float32 for
the few rows too (bfloat16 logits moved SmolLM2's label scores by up to 0.15): ``float_weights(model,
every_call=True)`` sends every matmul of the calling thread through the float32 weights.
The attention and MLP blocks also fuse their input projections (q/k/v, gate/up) into one
matmul each, since at one token per step the fixed cost of each call matters as much as its size.

The float32 modules stay the reference: these are built from them and tested close to
them (tests/nn/test_blocks.py); the benchmark reports the perplexity cost (bench/models.py).
"""

import threading
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.nn.attention import Attention, sdpa_attention
from llmlab.nn.feedforward import SwiGLU
from llmlab.nn.positions import apply_rope


class Int8Linear(nn.Module):
    """``y = x W^T`` with W stored as int8 rows and bfloat16 scales (no bias).

    For a few rows the kernel returns bfloat16, 8 bits of mantissa: a logit near 25 is rounded to a
    step of 0.125, so close candidates tie or swap. With ``refine`` = k (an output head), the k
    largest outputs of each row are computed again in float32 from their int8 rows, so the choice
    among the likely tokens is the float32 one; the rest keep their bfloat16 values."""

    def __init__(self, weight: torch.Tensor, rows_per_chunk: int = 4096, refine: int = 0):
        super().__init__()
        self.refine = refine
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
        self.keep, self.held = 0, None  # blocks of `float_weights` open: keep the float32 weight once made

    def dequantize(self) -> torch.Tensor:
        """The float32 weight (out, in): q * scale."""
        return self.weight_int8.float().mul_(self.scale.float()[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] > 16 or _every_call():  # many rows (a prompt): compute-bound, so dequantize, float32
            return F.linear(x, _dense(self))
        y = torch._weight_int8pack_mm(rows.to(torch.bfloat16), self.weight_int8, self.scale).float()  # (n, out)
        if self.refine:
            top = y.topk(min(self.refine, self.out_features), dim=-1).indices  # (n, k)
            w = self.weight_int8[top].float() * self.scale[top].float()[..., None]  # (n, k, in)
            y = y.scatter(-1, top, (w @ rows.float()[:, :, None]).squeeze(-1))
        return y.view(*x.shape[:-1], self.out_features)


class Int4Linear(nn.Module):
    """``y = x W^T`` with W in int4 groups of 32 inputs, a bfloat16 scale and minimum per group."""

    def __init__(self, weight: torch.Tensor, group: int = 32, rows_per_chunk: int = 4096):
        super().__init__()
        self.out_features, self.in_features = N, K = weight.shape
        if N % 64 or K % group:
            raise ValueError(f"int4 needs out_features % 64 == 0 and in_features % {group} == 0, got {N}x{K}")
        self.group = group
        q = torch.empty(N, K, dtype=torch.int32)
        scale, low = torch.empty(N, K // group), torch.empty(N, K // group)
        with torch.no_grad():
            for start in range(0, N, rows_per_chunk):
                rows = slice(start, start + rows_per_chunk)
                w = weight[rows].float().view(-1, K // group, group)  # (rows, groups, group)
                lo, hi = w.amin(dim=-1), w.amax(dim=-1)
                s = ((hi - lo) / 15).clamp(min=1e-12)
                q[rows] = torch.round((w - lo[..., None]) / s[..., None]).clamp(0, 15).view(-1, K).int()
                scale[rows], low[rows] = s, lo
        self.register_buffer("weight_int4", torch._convert_weight_to_int4pack_for_cpu(q, 1))  # packed (N, K/2)
        # the kernel computes (q - 8) * scale + zero, so zero = min + 8 * scale
        scale_zero = torch.stack([scale, low + 8 * scale], dim=-1).transpose(0, 1)  # (K/group, N, 2)
        self.register_buffer("scale_zero", scale_zero.contiguous().to(torch.bfloat16))
        self.keep, self.held = 0, None  # blocks of `float_weights` open: keep the float32 weight once made

    def dequantize(self) -> torch.Tensor:
        """The float32 weight (N, K) back from the packed codes: (q - 8) * scale + zero, each step
        in place on one float32 buffer (a prompt pays for this on every call, so it is kept to
        three passes over the weight)."""
        N, K = self.out_features, self.in_features
        b = self.weight_int4.reshape(N // 64, K, 32)  # the CPU packing: 64 rows per block, rows i and i+32 per byte
        w = torch.empty(N // 64, 64, K)  # (N/64, 64, K): the rows of each block of 64
        w[:, :32] = ((b & 0xF).view(torch.int8) - 8).transpose(1, 2)  # (N/64, 32, K), rows i; q - 8 is exact in int8
        w[:, 32:] = ((b >> 4).view(torch.int8) - 8).transpose(1, 2)  # (N/64, 32, K), rows i + 32
        scale, zero = self.scale_zero.float().transpose(0, 1).unsqueeze(-1).unbind(-2)  # (N, K/group, 1) each
        w = w.view(N, K // self.group, self.group)  # (N, K/group, group)
        return w.mul_(scale.contiguous()).add_(zero.contiguous()).view(N, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] > 16 or _every_call():
            return F.linear(x, _dense(self))
        y = torch._weight_int4pack_mm_for_cpu(rows.to(torch.bfloat16), self.weight_int4, self.group, self.scale_zero)
        return y.float().view(*x.shape[:-1], self.out_features)


_holding = threading.Lock()  # guards `keep` and `held` of every layer
_every_call_threads: dict[int, int] = {}  # thread id -> blocks of `float_weights(every_call=True)` it opened


def _every_call() -> bool:
    return threading.get_ident() in _every_call_threads


def _dense(layer) -> torch.Tensor:
    """The float32 weight of an int8 / int4 layer for a prompt: made on each call, or once while kept."""
    w = layer.held  # read once: another thread's block may end meanwhile
    if w is None:
        w = layer.dequantize()
        if layer.keep:
            with _holding:
                if layer.keep:  # (still)
                    layer.held = w
    return w


@contextmanager
def float_weights(model: nn.Module, every_call: bool = False):
    """Within the block, the int8 / int4 layers of ``model`` keep the float32 weight they
    dequantize for a prompt (more than 16 rows) instead of making it again on every call: the
    same results, faster for many short prompts, for the memory of those weights (about 430 MB
    for SmolLM2-135M's blocks; the output head only if it reads prompts whole) until the last
    block open on the model ends (blocks may nest, or run in several threads on one model).
    Generating token by token is unchanged; a float32 model passes through untouched.

    ``every_call``: calls of a few rows made by the thread that opened the block use the float32
    weights too (the head's included, 113 MB more for SmolLM2): float32 results throughout, as
    scoring continuations wants; slower for generating."""
    layers = [m for m in model.modules() if isinstance(m, (Int8Linear, Int4Linear))]
    opener = threading.get_ident()  # (a block may be closed from another thread: a generator's, say)
    with _holding:
        for layer in layers:
            layer.keep += 1
        if every_call:
            _every_call_threads[opener] = _every_call_threads.get(opener, 0) + 1
    try:
        yield model
    finally:
        with _holding:
            if every_call:
                _every_call_threads[opener] -= 1
                if not _every_call_threads[opener]:
                    del _every_call_threads[opener]
            for layer in layers:
                layer.keep -= 1
                if not layer.keep:
                    layer.held = None
        if layers:  # the freed weights back to the OS (glibc keeps blocks of a few MB in its heap)
            from llmlab.weights.gguf import release_freed_memory  # (the loaders' helper, imported when used)

            release_freed_memory()


class Int8Embedding(nn.Module):
    """Token embedding that shares the int8 rows and scales of a (tied) `Int8Linear` head."""

    def __init__(self, head: Int8Linear):
        super().__init__()
        self.head = [head]  # a plain list: the buffers are registered (and counted) in the head only

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        head = self.head[0]
        return head.weight_int8[ids].float() * head.scale[ids].float()[..., None]  # (B, T, C)


LINEARS = {"int8": Int8Linear, "int4": Int4Linear}


class QuantizedAttention(nn.Module):
    """`Attention` with q/k/v fused into one quantized projection (``precision``: int8 or int4)."""

    def __init__(self, attn: Attention, precision: str = "int8"):
        super().__init__()
        linear = LINEARS[precision]
        self.n_heads, self.n_kv_heads, self.head_dim = attn.n_heads, attn.n_kv_heads, attn.head_dim
        self.qkv_proj = linear(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        self.o_proj = linear(attn.o_proj.weight)
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


class QuantizedSwiGLU(nn.Module):
    """`SwiGLU` with gate/up fused into one quantized projection (``precision``: int8 or int4)."""

    def __init__(self, mlp: SwiGLU, precision: str = "int8"):
        super().__init__()
        linear = LINEARS[precision]
        self.hidden = mlp.gate_proj.out_features
        self.gate_up_proj = linear(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))
        self.down_proj = linear(mlp.down_proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).split(self.hidden, dim=-1)
        return self.down_proj(F.silu(gate) * up)
