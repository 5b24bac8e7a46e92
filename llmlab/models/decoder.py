"""Decoder-only transformer: the GPT-2 and Llama families from one config.

A decoder reads token ids and predicts the next token at every position, seeing only the
past (causal attention). The two families differ in their blocks, so each has its own
short block class:

- GPT-2 (Radford et al. 2019): learned absolute positions, LayerNorm, GELU MLP, biases,
  tied input/output embeddings.
- Llama (Touvron et al. 2023; SmolLM2 is one): rotary positions, RMSNorm, SwiGLU MLP,
  grouped-query attention, no biases.

Both are pre-norm: ``x = x + attn(norm(x)); x = x + mlp(norm(x))``. Parameter names follow
the HF Llama checkpoints (``layers.0.self_attn.q_proj``...) and GPT-2's (``ln_1``, ``mlp.c_fc``)
so weight loading is one flat rename table per format (llmlab.weights).

Generation feeds the prompt once (prefill) and then one token at a time through a
`KVCache`; batched prompts are left-padded and carry an attention mask.
Tests: tests/models/test_decoder.py (tiny random configs vs HF transformers, cache vs
no cache) and tests/weights/test_gguf.py (SmolLM2 logits and greedy ids vs HF).
"""

from dataclasses import dataclass

import torch
from torch import nn

from llmlab.nn.attention import Attention, KVCache
from llmlab.nn.feedforward import GeluMLP, SwiGLU
from llmlab.nn.norms import RMSNorm
from llmlab.nn.positions import RotaryEmbedding
from llmlab.nn.quantized import Int4Linear, Int8Embedding, Int8Linear, QuantizedAttention, QuantizedSwiGLU

QUANTIZED_LINEARS = (Int8Linear, Int4Linear)


@dataclass
class DecoderConfig:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    family: str = "llama"  # "llama" or "gpt2"
    n_kv_heads: int | None = None  # None: as many as query heads
    head_dim: int | None = None  # None: dim // n_heads
    ffn_dim: int | None = None  # None: 4 * dim (GPT-2)
    max_seq_len: int = 2048  # the context window
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_embeddings: bool = True

    def __post_init__(self):
        if self.family not in ("llama", "gpt2"):
            raise ValueError(f"unknown decoder family {self.family!r} (llama or gpt2)")
        self.n_kv_heads = self.n_kv_heads or self.n_heads
        self.head_dim = self.head_dim or self.dim // self.n_heads
        self.ffn_dim = self.ffn_dim or 4 * self.dim
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"{self.n_heads} query heads cannot share {self.n_kv_heads} kv heads evenly")


class LlamaBlock(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.self_attn = Attention(cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, bias=False)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.dim, cfg.ffn_dim)

    def forward(self, x, rope, mask, cache, layer):
        x = x + self.self_attn(self.input_layernorm(x), rope, mask, cache, layer)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class GPT2Block(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, bias=True)
        self.ln_2 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.mlp = GeluMLP(cfg.dim, cfg.ffn_dim)

    def forward(self, x, rope, mask, cache, layer):
        x = x + self.attn(self.ln_1(x), rope, mask, cache, layer)
        x = x + self.mlp(self.ln_2(x))
        return x


def embedding(n: int, dim: int) -> nn.Embedding:
    """``nn.Embedding`` initialised N(0, 1) as usual, except on the meta device (where loaders
    build a model before filling in its weights): there PyTorch's normal_ pulls in ~70 MB of
    Python decompositions for nothing, so the init is skipped."""
    weight = torch.empty(n, dim)
    if weight.device.type != "meta":
        nn.init.normal_(weight)
    return nn.Embedding(n, dim, _weight=weight)


def quantize_block(block: nn.Module, precision: str = "int8") -> None:
    """Replace a Llama block's attention and MLP by their int8 or int4 versions, in place."""
    if not isinstance(block, LlamaBlock):
        raise ValueError("quantized weights are implemented for the Llama family only")
    block.self_attn = QuantizedAttention(block.self_attn, precision)
    block.mlp = QuantizedSwiGLU(block.mlp, precision)


class Decoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.config = cfg
        llama = cfg.family == "llama"
        self.embed_tokens = embedding(cfg.vocab_size, cfg.dim)
        self.embed_positions = None if llama else embedding(cfg.max_seq_len, cfg.dim)
        self.rotary = RotaryEmbedding(cfg.head_dim, cfg.rope_theta) if llama else None
        block = LlamaBlock if llama else GPT2Block
        self.layers = nn.ModuleList(block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps) if llama else nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def num_parameters(self) -> int:
        """Weights of the model, tied ones once; quantized layers count their logical weight."""
        quantized = sum(m.out_features * m.in_features for m in self.modules() if isinstance(m, QUANTIZED_LINEARS))
        return sum(p.numel() for p in self.parameters()) + quantized

    def quantize(self, precision: str = "int8") -> "Decoder":
        """Swap in int8 or int4 weight-only blocks and an int8 output head (llmlab.nn.quantized)
        for fast CPU generation; a tied input embedding shares the head's int8 table."""
        for block in self.layers:
            quantize_block(block, precision)
        self.quantize_head_int8()
        return self

    def quantize_head_int8(self) -> None:
        self.lm_head = Int8Linear(self.lm_head.weight, refine=64)  # the likely tokens' logits in float32
        if self.config.tie_embeddings:
            self.embed_tokens = Int8Embedding(self.lm_head)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        cfg = self.config
        p = self.norm.weight
        return KVCache(cfg.n_layers, batch, cfg.n_kv_heads, cfg.head_dim, max_len, p.dtype, p.device)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
        last_only: bool = False,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, vocab) for ids (B, T); (B, 1, vocab) with ``last_only``; (B, len(rows), vocab)
        at the places ``rows`` (1-D) only.

        ``attention_mask`` (B, past + T), 1 for tokens and 0 for (left) padding, covers the
        cached positions too. ``positions`` default to past + 0..T-1, or to the count of real
        tokens before each position when a mask is given.

        A (B, T, past + T) ``attention_mask`` says outright which keys each new token sees, with
        ``positions`` given: several continuations of one cached prompt, laid side by side and
        each seeing only the prompt and itself, are read in one pass (`continuation_logprobs`).
        """
        B, T = input_ids.shape
        past = cache.length if cache is not None else 0
        if last_only and rows is not None:
            raise ValueError("give last_only or rows, not both")
        if attention_mask is not None and attention_mask.dim() == 3:
            if positions is None or attention_mask.shape[1:] != (T, past + T):
                raise ValueError(f"a 3-D attention mask is (B, T, past + T) = (B, {T}, {past + T}), with positions")
            if int(positions.max()) >= self.config.max_seq_len:
                raise ValueError(f"position {int(positions.max())} is past the context window of "
                                 f"{self.config.max_seq_len}")
            mask = attention_mask[:, None].bool()  # (B, 1, T, S)
        else:
            if past + T > self.config.max_seq_len:
                raise ValueError(f"{past + T} positions exceed the context window of {self.config.max_seq_len}")
            mask = self._mask(attention_mask, T, past, input_ids.device)
        if positions is None:
            if attention_mask is not None:
                positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]  # (B, T)
            else:
                positions = torch.arange(past, past + T, device=input_ids.device).expand(B, T)
        x = self.embed_tokens(input_ids)  # (B, T, C)
        if self.embed_positions is not None:
            x = x + self.embed_positions(positions)
        rope = self.rotary(positions) if self.rotary is not None else None
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, mask, cache, i)
        if cache is not None:
            cache.length += T
        if last_only:
            x = x[:, -1:]
        elif rows is not None:
            x = x[:, rows]
        return self.lm_head(self.norm(x))

    @staticmethod
    def _mask(attention_mask, T: int, past: int, device) -> torch.Tensor | None:
        """Bool (B, 1, T, past+T): query i sees key j when j <= past+i and j is not padding.
        None when plain causal attention (or, for one new token, no mask) is exact."""
        if attention_mask is None and (past == 0 or T == 1):
            return None
        S = past + T
        mask = torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=past)[None, None]  # (1, 1, T, S)
        if attention_mask is not None:
            mask = mask & attention_mask[:, None, None, :S].bool()  # (B, 1, T, S)
            # a padding query would see nothing at all; let it see itself so no row is empty
            own = torch.arange(past, S, device=device)[:, None] == torch.arange(S, device=device)[None, :]  # (T, S)
            mask = mask | own[None, None]
        return mask
