"""Encoder-decoder (sequence-to-sequence) models: the road from RNNs to the transformer.

Three models with one interface, so that one experiment can train and compare them:

- `RNNSeq2Seq` (Sutskever, Vinyals & Le 2014; Cho et al. 2014): a GRU encoder reads the source;
  its final hidden state (one vector per layer) is the only thing the GRU decoder ever sees of
  it. Everything about a long sentence has to fit through that bottleneck.
- `AttentionSeq2Seq` (Bahdanau, Cho & Bengio 2014): the decoder looks back at every encoder
  state at every step through additive attention, ``c_i = sum_j a_ij h_j``; the encoder reads
  both ways by default. The decoder step is Bahdanau's: with ``s_{i-1}`` the previous state,

      c_i = attention(s_{i-1}, h_1..h_S)
      s_i = GRU([E y_{i-1}; c_i], s_{i-1})
      logits_i = W_o [s_i; c_i; E y_{i-1}]      (a linear read-out instead of the paper's maxout)

  and ``s_0 = tanh(W_b [final encoder states of the top layer])``.
- `TransformerSeq2Seq` (Vaswani et al. 2017): no recurrence at all; self-attention in the encoder,
  causal self-attention plus cross-attention to the encoder in the decoder, sinusoidal positions.
  Blocks are pre-LN (``x = x + attn(ln(x))``, Xiong et al. 2020) rather than the paper's post-LN,
  with a final LayerNorm, a GELU MLP, untied and unscaled embeddings, no dropout.

Interface: ``forward(src, src_lengths, tgt_in) -> logits (B, T_tgt, V)`` with teacher forcing
(``tgt_in`` is the target shifted right, starting with BOS), and
``greedy_decode(src, src_lengths, max_len, bos, eos) -> ids (B, n)``, n <= max_len, each row
ending at its EOS and filled with ``pad_id`` after it. Sources are right-padded; ``src_lengths``
(B,) gives the real lengths (None: all full) and padding never changes a result. The two
attention models take ``return_attention=True`` and also return the weights (B, T_tgt, T_src)
(for the transformer: the last decoder layer's cross-attention, averaged over heads).
The RNN decoders carry their state from step to step; the transformer decodes without a KV
cache, recomputing the whole prefix at each step.

`count_parameters` counts weights; `equal_budget_configs` sizes the three to one budget.
Tests: tests/models/test_seq2seq.py (shapes, padding invariance, causality, greedy decoding
equal to teacher forcing, cross-attention ignoring padding, SDPA equal to the written-out
attention, each model learning a small copy task exactly).
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from llmlab.nn.attention import AdditiveAttention, Attention, CrossAttention
from llmlab.nn.feedforward import GeluMLP
from llmlab.nn.positions import sinusoidal_positions
from llmlab.nn.rnn import GRU, GRUCell, lengths_mask

KINDS = ("rnn", "attention", "transformer")


@dataclass
class Seq2SeqConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    kind: str = "attention"  # "rnn", "attention" or "transformer"
    dim: int = 64  # C: token embedding width, and the transformer's model width
    hidden_size: int | None = None  # H: GRU state width; None: dim
    n_layers: int = 1  # encoder layers = decoder layers
    bidirectional: bool = True  # the attention model's encoder reads both ways (the RNN model's never does)
    attn_dim: int | None = None  # width inside additive attention's tanh; None: hidden_size
    n_heads: int = 4  # transformer
    ffn_dim: int | None = None  # transformer MLP width; None: 4 * dim
    norm_eps: float = 1e-5
    pad_id: int = 0  # greedy_decode writes it after a row's EOS

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown seq2seq kind {self.kind!r} (one of {', '.join(KINDS)})")
        self.hidden_size = self.hidden_size or self.dim
        self.attn_dim = self.attn_dim or self.hidden_size
        self.ffn_dim = self.ffn_dim or 4 * self.dim
        if self.kind == "transformer" and (self.dim % self.n_heads or self.dim % 2):
            raise ValueError(f"transformer dim {self.dim} must be even and divisible by n_heads {self.n_heads}")


def count_parameters(model: nn.Module) -> int:
    """Number of weights, shared ones counted once."""
    return sum(p.numel() for p in model.parameters())


class Seq2Seq(nn.Module):
    """What the three models share: greedy decoding over their own ``start`` and ``step``.

    ``start(src, src_lengths)`` encodes the source into a decoding state; ``step(state, token)``
    takes the previous target token (B,) and returns the next token's logits (B, V) and the new state."""

    config: Seq2SeqConfig

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, src_lengths: torch.Tensor | None, max_len: int, bos: int, eos: int,
                      return_attention: bool = False):
        """Ids (B, n) of the most likely next token at each step, n <= max_len; decoding stops when
        every row has produced ``eos`` and a row's positions after its ``eos`` hold ``pad_id``.
        With ``return_attention`` also the weights (B, n, T_src) of teacher forcing on these ids."""
        if max_len < 1:
            raise ValueError(f"max_len must be at least 1, got {max_len}")
        B = src.shape[0]
        state = self.start(src, src_lengths)
        token = torch.full((B,), bos, dtype=torch.long, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        ids = []
        for _ in range(max_len):
            logits, state = self.step(state, token)  # (B, V)
            token = logits.argmax(dim=-1).masked_fill(done, self.config.pad_id)  # (B,)
            ids.append(token)
            done = done | (token == eos)
            if done.all():
                break
        ids = torch.stack(ids, dim=1)  # (B, n)
        if not return_attention:
            return ids
        tgt_in = torch.cat((torch.full((B, 1), bos, dtype=torch.long, device=src.device), ids[:, :-1]), dim=1)
        return ids, self.forward(src, src_lengths, tgt_in, return_attention=True)[1]


def source_mask(src: torch.Tensor, src_lengths) -> torch.Tensor:
    """Bool (B, S), True at real source tokens."""
    B, S = src.shape
    if src_lengths is None:
        return torch.ones(B, S, dtype=torch.bool, device=src.device)
    return lengths_mask(src_lengths, B, S, src.device)


# --- 2014: the final encoder state as the only bridge ----------------------------------
class RNNSeq2Seq(Seq2Seq):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.config = cfg
        H = cfg.hidden_size
        self.src_embed = nn.Embedding(cfg.src_vocab_size, cfg.dim)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, cfg.dim)
        self.encoder = GRU(cfg.dim, H, cfg.n_layers)
        self.decoder = GRU(cfg.dim, H, cfg.n_layers)
        self.head = nn.Linear(H, cfg.tgt_vocab_size)

    def start(self, src: torch.Tensor, src_lengths) -> torch.Tensor:
        _, h = self.encoder(self.src_embed(src), lengths=src_lengths)  # (L, B, H): state at each last real token
        return h

    def forward(self, src, src_lengths, tgt_in, return_attention: bool = False) -> torch.Tensor:
        if return_attention:
            raise ValueError("RNNSeq2Seq has no attention to return")
        h = self.start(src, src_lengths)  # (L, B, H): all the decoder learns about the source
        out, _ = self.decoder(self.tgt_embed(tgt_in), h)  # (B, T, H)
        return self.head(out)  # (B, T, V)

    def step(self, h: torch.Tensor, token: torch.Tensor):
        out, h = self.decoder(self.tgt_embed(token)[:, None], h)  # (B, 1, H), (L, B, H)
        return self.head(out[:, 0]), h


# --- 2014: additive attention over all encoder states --------------------------------
class AttentionSeq2Seq(Seq2Seq):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.config = cfg
        H, L = cfg.hidden_size, cfg.n_layers
        self.directions = 2 if cfg.bidirectional else 1
        enc_dim = self.directions * H  # width of an encoder state h_j
        self.src_embed = nn.Embedding(cfg.src_vocab_size, cfg.dim)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, cfg.dim)
        self.encoder = GRU(cfg.dim, H, L, bidirectional=cfg.bidirectional)
        self.bridge = nn.Linear(enc_dim, L * H)  # s_0 of every decoder layer
        self.attention = AdditiveAttention(H, enc_dim, cfg.attn_dim)
        self.cells = nn.ModuleList(GRUCell(cfg.dim + enc_dim if i == 0 else H, H) for i in range(L))
        self.head = nn.Linear(H + enc_dim + cfg.dim, cfg.tgt_vocab_size)

    def start(self, src: torch.Tensor, src_lengths):
        B = src.shape[0]
        L, H, D = self.config.n_layers, self.config.hidden_size, self.directions
        memory, h_n = self.encoder(self.src_embed(src), lengths=src_lengths)  # (B, S, D*H), (L*D, B, H)
        top = h_n[-D:].transpose(0, 1).reshape(B, D * H)  # (B, D*H): forward at the last token, backward at the first
        s = torch.tanh(self.bridge(top)).view(B, L, H).transpose(0, 1)  # (L, B, H)
        return memory, self.attention.project_keys(memory), source_mask(src, src_lengths), s

    def attend_step(self, state, token: torch.Tensor):
        """One decoder step: logits (B, V), the new state and the attention weights (B, S)."""
        memory, keys, mask, s = state
        context, weights = self.attention(s[-1], memory, mask, keys)  # (B, D*H), (B, S); query s_{i-1}
        e = self.tgt_embed(token)  # (B, dim): E y_{i-1}
        x = torch.cat((e, context), dim=-1)  # (B, dim + D*H)
        new = []
        for layer, cell in enumerate(self.cells):
            x = cell(x, s[layer])  # (B, H)
            new.append(x)
        logits = self.head(torch.cat((x, context, e), dim=-1))  # (B, V)
        return logits, (memory, keys, mask, torch.stack(new)), weights

    def step(self, state, token: torch.Tensor):
        logits, state, _ = self.attend_step(state, token)
        return logits, state

    def forward(self, src, src_lengths, tgt_in, return_attention: bool = False):
        state = self.start(src, src_lengths)
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):  # each step needs the state of the one before
            step_logits, state, w = self.attend_step(state, tgt_in[:, t])
            logits.append(step_logits)
            weights.append(w)
        logits = torch.stack(logits, dim=1)  # (B, T, V)
        return (logits, torch.stack(weights, dim=1)) if return_attention else logits  # weights (B, T, S)


# --- 2017: attention only ------------------------------------------------------------
class EncoderLayer(nn.Module):
    """Pre-LN transformer encoder layer: self-attention over the real source tokens, then the MLP."""

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        C = cfg.dim
        self.ln_1 = nn.LayerNorm(C, eps=cfg.norm_eps)
        self.self_attn = Attention(C, cfg.n_heads, cfg.n_heads, C // cfg.n_heads, bias=True)
        self.ln_2 = nn.LayerNorm(C, eps=cfg.norm_eps)
        self.mlp = GeluMLP(C, cfg.ffn_dim, approximate="none")

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.ln_1(x), mask=mask)  # mask (B, 1, 1, S): padding keys get no weight
        x = x + self.mlp(self.ln_2(x))
        return x


class DecoderLayer(nn.Module):
    """Pre-LN transformer decoder layer: causal self-attention, cross-attention to the encoder, MLP."""

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        C = cfg.dim
        self.ln_1 = nn.LayerNorm(C, eps=cfg.norm_eps)
        self.self_attn = Attention(C, cfg.n_heads, cfg.n_heads, C // cfg.n_heads, bias=True)
        self.ln_2 = nn.LayerNorm(C, eps=cfg.norm_eps)
        self.cross_attn = CrossAttention(C, cfg.n_heads)
        self.ln_3 = nn.LayerNorm(C, eps=cfg.norm_eps)
        self.mlp = GeluMLP(C, cfg.ffn_dim, approximate="none")

    def forward(self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.ln_1(x))  # no mask given: causal, position t sees 0..t
        x = x + self.cross_attn(self.ln_2(x), memory, mask)
        x = x + self.mlp(self.ln_3(x))
        return x


class TransformerSeq2Seq(Seq2Seq):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.config = cfg
        self.src_embed = nn.Embedding(cfg.src_vocab_size, cfg.dim)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, cfg.dim)
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_layers))
        self.encoder_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        self.decoder_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.tgt_vocab_size)

    def embed(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        positions = sinusoidal_positions(ids.shape[1], self.config.dim).to(ids.device)  # (T, C)
        return table(ids) + positions  # (B, T, C)

    def encode(self, src: torch.Tensor, src_lengths):
        """Encoder output (B, S, C) and the source mask (B, 1, 1, S) every attention to it uses."""
        mask = source_mask(src, src_lengths)[:, None, None, :]  # (B, 1, 1, S)
        x = self.embed(self.src_embed, src)  # (B, S, C)
        for layer in self.encoder_layers:
            x = layer(x, mask)
        return self.encoder_norm(x), mask

    def decode(self, memory: torch.Tensor, mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        x = self.embed(self.tgt_embed, tgt_in)  # (B, T, C)
        for layer in self.decoder_layers:
            x = layer(x, memory, mask)
        return self.head(self.decoder_norm(x))  # (B, T, V)

    def forward(self, src, src_lengths, tgt_in, return_attention: bool = False):
        memory, mask = self.encode(src, src_lengths)
        logits = self.decode(memory, mask, tgt_in)
        return (logits, self.cross_attention_weights(memory, mask, tgt_in)) if return_attention else logits

    def cross_attention_weights(self, memory, mask, tgt_in) -> torch.Tensor:
        """The last decoder layer's cross-attention weights, averaged over heads: (B, T, S)."""
        x = self.embed(self.tgt_embed, tgt_in)  # (B, T, C)
        *layers, last = self.decoder_layers
        for layer in layers:
            x = layer(x, memory, mask)
        x = x + last.self_attn(last.ln_1(x))
        return last.cross_attn.weights(last.ln_2(x), memory, mask).mean(dim=1)  # (B, T, S)

    def start(self, src: torch.Tensor, src_lengths):
        memory, mask = self.encode(src, src_lengths)
        return memory, mask, src.new_zeros(src.shape[0], 0)  # no target tokens yet

    def step(self, state, token: torch.Tensor):
        memory, mask, prefix = state
        prefix = torch.cat((prefix, token[:, None]), dim=1)  # (B, t)
        logits = self.decode(memory, mask, prefix)[:, -1]  # the whole prefix again: no KV cache
        return logits, (memory, mask, prefix)


MODELS = {"rnn": RNNSeq2Seq, "attention": AttentionSeq2Seq, "transformer": TransformerSeq2Seq}


def build_seq2seq(cfg: Seq2SeqConfig) -> Seq2Seq:
    """The model of ``cfg.kind``."""
    return MODELS[cfg.kind](cfg)


def equal_budget_configs(vocab_size: int, budget: int, n_layers: int = 1, n_heads: int = 4,
                         tgt_vocab_size: int | None = None) -> dict[str, Seq2SeqConfig]:
    """One config per kind with about ``budget`` parameters, so that a comparison is fair.

    Every width of a model follows ``dim`` (embeddings; GRU state and attention width = dim;
    transformer MLP = 4 * dim), and ``dim`` is the width whose exact parameter count
    (`count_parameters` of the model built on the meta device) is closest to the budget. The
    transformer's ``dim`` moves in steps of ``n_heads`` (and stays even), so its MLP width then
    takes up the difference. Embedding tables and the output layer grow with the vocabulary: a
    small budget with a large vocabulary leaves little for the network itself."""
    tgt_vocab_size = tgt_vocab_size or vocab_size

    def config(kind: str, m: int, ffn_dim: int | None = None) -> Seq2SeqConfig:
        step = math.lcm(2, n_heads) if kind == "transformer" else 1  # dim = m * step
        return Seq2SeqConfig(vocab_size, tgt_vocab_size, kind=kind, dim=m * step, n_layers=n_layers,
                             n_heads=n_heads, ffn_dim=ffn_dim)

    def count(cfg: Seq2SeqConfig) -> int:
        with torch.device("meta"):  # shapes only, no memory
            return count_parameters(build_seq2seq(cfg))

    configs = {}
    for kind in KINDS:
        lo, hi = 1, 8192 // config(kind, 1).dim  # smallest m whose count reaches the budget, by bisection
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if count(config(kind, mid)) < budget else (lo, mid)
        best = min((m for m in (lo - 1, lo) if m >= 1), key=lambda m: abs(count(config(kind, m)) - budget))
        cfg = config(kind, best)
        if kind == "transformer":  # the count is linear in ffn_dim: solve for it
            per_unit = count(config(kind, best, cfg.ffn_dim + 1)) - count(cfg)
            cfg = config(kind, best, max(1, cfg.ffn_dim + round((budget - count(cfg)) / per_unit)))
        configs[kind] = cfg
    return configs
