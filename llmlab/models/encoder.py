"""BERT, the bidirectional transformer encoder, and sentence embeddings pooled from it.

Lineage: BERT (Devlin et al. 2018, "BERT: Pre-training of Deep Bidirectional Transformers
for Language Understanding"): learned token + position + segment embeddings, then post-LN
encoder layers (attention -> add -> LayerNorm, GELU MLP -> add -> LayerNorm), as in the
original transformer. Parameter names are HF ``BertModel``'s, so HF weights load through a
flat table (``llmlab.weights.hf``). Sentence vectors follow sentence-transformers (Reimers &
Gurevych 2019): pool the last hidden states over the real tokens (mean, [CLS] or max) and
L2-normalise when the model's ``modules.json`` lists a Normalize step. `BertForMaskedLM` adds
BERT's masked-LM head (transform: dense -> GELU -> LayerNorm, then a decoder tied to the word
embeddings plus a bias; HF's ``cls.predictions.*`` names) and `init_bert` BERT's initialisation,
for pre-training an encoder from scratch (llmlab.train.pretrain, ``objective="mlm"``).

``tests/models/test_encoder.py`` proves it: a tiny random config equals ``transformers.BertModel``
(with padding), the SDPA path equals the plain softmax reference, and all-MiniLM-L6-v2 equals
``sentence_transformers.SentenceTransformer`` (cosine >= 0.99999 on 500 sentences in many
scripts, truncation past 256 tokens, STS-B dev Spearman to 4 decimals);
``tests/train/test_mlm.py`` proves the masked-LM head equal to ``transformers.BertForMaskedLM``.

Limits: single sentences only (no sentence pairs, ``token_type_ids`` default to 0); text longer
than ``max_seq_length`` tokens is cut to its first tokens, as sentence-transformers does;
``SentenceEncoder.truncated`` counts how often that happened.
"""

import copy
import math
import numbers
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from llmlab.errors import LlmlabError
from llmlab.tokenize.wordpiece import WordPieceTokenizer


@dataclass
class BertConfig:
    """Sizes of a BERT encoder; defaults are all-MiniLM-L6-v2's."""

    vocab_size: int = 30522
    hidden_size: int = 384  # C
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536  # width of the MLP between the two residual adds
    max_position_embeddings: int = 512  # longest input the learned positions allow
    type_vocab_size: int = 2  # segments A/B of sentence-pair inputs
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"  # exact erf GELU, as in BERT (not the tanh approximation)
    pad_token_id: int | None = 0  # embedding row kept at zero for padding; None: no such row
    dropout: float = 0.0  # in training mode: on embeddings, attention weights and both residual branches
    # (BERT trains with 0.1; read at each forward, so a fine-tuning run may set it on a loaded model)
    head_dim: int = field(init=False)

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise LlmlabError(f"hidden_size {self.hidden_size} is not divisible by "
                              f"num_attention_heads {self.num_attention_heads}")
        if self.hidden_act != "gelu":
            raise LlmlabError(f"hidden_act {self.hidden_act!r} is not supported (only 'gelu')")
        self.head_dim = self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf_config(cls, config: dict, source: str = "config.json") -> "BertConfig":
        """The fields of an HF BERT config.json (other keys are ignored)."""
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise LlmlabError(f"{source}: position_embedding_type {config['position_embedding_type']!r} "
                              "is not supported (only 'absolute')")
        names = [f.name for f in fields(cls) if f.init]
        missing = [n for n in names if n not in config and n not in ("hidden_act", "pad_token_id", "dropout")]
        if missing:
            raise LlmlabError(f"{source}: missing BERT settings {', '.join(missing)}")
        kwargs = {n: config[n] for n in names if n in config and n != "dropout"}  # HF's dropouts: set per run
        if not all(isinstance(v, int) and not isinstance(v, bool) for k, v in kwargs.items()
                   if k not in ("layer_norm_eps", "hidden_act")):
            raise LlmlabError(f"{source}: BERT sizes must be integers")
        try:
            return cls(**kwargs)
        except LlmlabError as e:
            raise LlmlabError(f"{source}: {e}") from None


# --- attention ---------------------------------------------------------------------
def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor,
                        dropout: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v, written out (``dropout`` on the weights); the plain twin of SDPA.

    q, k, v: (B, n_head, T, head_dim); attn_mask: bool, True where a key may be attended."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, n_head, T, T)
    scores = scores.masked_fill(~attn_mask, float("-inf"))  # padding keys get zero weight
    return F.dropout(scores.softmax(dim=-1), dropout) @ v  # (B, n_head, T, head_dim)


class SelfAttention(nn.Module):
    """HF's ``attention.self``: multi-head scaled dot-product attention over all tokens (no causal mask)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        self.n_head, self.head_dim = cfg.num_attention_heads, cfg.head_dim
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, reference: bool = False) -> torch.Tensor:
        B, T, C = x.shape
        q = self.query(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, n_head, T, head_dim)
        k = self.key(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, n_head, T, head_dim)
        v = self.value(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, n_head, T, head_dim)
        p = self.cfg.dropout if self.training else 0.0
        if reference:
            y = reference_attention(q, k, v, attn_mask, p)  # (B, n_head, T, head_dim)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        return y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side again


class Dense(nn.Module):
    """A Linear named ``dense`` and, when ``eps`` is given, the LayerNorm applied after its residual add.

    Only a container, so that parameter names read like HF's (``output.dense``, ``output.LayerNorm``);
    `BertLayer.forward` writes the computation out."""

    def __init__(self, d_in: int, d_out: int, eps: float | None = None):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(d_out, eps=eps)


class Attention(nn.Module):
    """HF's ``attention``: ``self`` (query/key/value) and ``output`` (projection + LayerNorm)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.self = SelfAttention(cfg)
        self.output = Dense(cfg.hidden_size, cfg.hidden_size, cfg.layer_norm_eps)


class BertLayer(nn.Module):
    """One post-LN encoder layer: LayerNorm after each residual add, as in BERT and the 2017 transformer."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        self.attention = Attention(cfg)
        self.intermediate = Dense(cfg.hidden_size, cfg.intermediate_size)
        self.output = Dense(cfg.intermediate_size, cfg.hidden_size, cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, reference: bool = False) -> torch.Tensor:
        p = self.cfg.dropout if self.training else 0.0
        a = self.attention.self(x, attn_mask, reference)  # (B, T, C)
        x = self.attention.output.LayerNorm(x + F.dropout(self.attention.output.dense(a), p))  # (B, T, C)
        h = F.gelu(self.intermediate.dense(x))  # (B, T, intermediate_size)
        x = self.output.LayerNorm(x + F.dropout(self.output.dense(h), p))  # (B, T, C)
        return x


class Embeddings(nn.Module):
    """HF's ``embeddings``: token + learned position + segment vectors, then LayerNorm."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.size(1), device=input_ids.device)  # (T,)
        x = (self.word_embeddings(input_ids)  # (B, T, C)
             + self.position_embeddings(positions)  # (T, C), the same for every row
             + self.token_type_embeddings(token_type_ids))  # (B, T, C)
        return F.dropout(self.LayerNorm(x), self.cfg.dropout if self.training else 0.0)


class Encoder(nn.Module):
    """HF's ``encoder``: the stack of layers."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))


class BertModel(nn.Module):
    """The BERT encoder without the pooler: token ids -> contextual vectors (B, T, C)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.encoder = Encoder(cfg)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, reference: bool = False) -> torch.Tensor:
        """Last hidden states (B, T, C). ``attention_mask`` (B, T): 1 for tokens, 0 for padding;
        ``reference=True`` runs the plain softmax attention instead of SDPA."""
        B, T = input_ids.shape
        if T > self.config.max_position_embeddings:
            raise LlmlabError(f"input has {T} tokens, more than this model's "
                              f"{self.config.max_position_embeddings} positions")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        attn_mask = attention_mask.bool().view(B, 1, 1, T)  # (B, 1, 1, T): each query sees the real keys
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, C)
        for layer in self.encoder.layer:
            x = layer(x, attn_mask, reference)
        return x

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# --- masked-LM head and pre-training from scratch -------------------------------------------
class LMPredictionHead(nn.Module):
    """HF's ``cls.predictions``: ``transform`` (dense + LayerNorm) and the output ``bias``; the decoder
    matrix is the word embedding table itself (tied), so it has no parameter of its own here."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.transform = Dense(cfg.hidden_size, cfg.hidden_size, cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))


class MLMHead(nn.Module):
    """HF's ``cls`` of ``BertForMaskedLM``: only the ``predictions`` head (no next-sentence head)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.predictions = LMPredictionHead(cfg)


class BertForMaskedLM(nn.Module):
    """BERT with its masked-LM head: token ids -> vocabulary logits at every (or the chosen) position."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.config = cfg
        self.bert = BertModel(cfg)
        self.cls = MLMHead(cfg)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                reference: bool = False) -> torch.Tensor:
        """Logits (B, T, vocab); with ``positions`` (bool, (B, T)) only those rows, (n, vocab), so a
        training step pays the vocabulary projection for the masked tokens alone."""
        h = self.bert(input_ids, attention_mask, token_type_ids, reference)  # (B, T, C)
        if positions is not None:
            h = h[positions]  # (n, C): the positions whose token is predicted
        head = self.cls.predictions
        h = head.transform.LayerNorm(F.gelu(head.transform.dense(h)))  # (..., C)
        return F.linear(h, self.bert.embeddings.word_embeddings.weight, head.bias)  # (..., vocab): tied decoder

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def init_bert(model: nn.Module) -> None:
    """BERT initialisation (as HF's ``BertPreTrainedModel``): Linear weights and embeddings N(0, 0.02),
    biases zero, LayerNorm gain 1 and bias 0, the padding row of an embedding zero."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.padding_idx is not None:
                nn.init.zeros_(m.weight[m.padding_idx])
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, LMPredictionHead):
            nn.init.zeros_(m.bias)


# --- sentence embeddings -------------------------------------------------------------
ENCODER_PRECISIONS = ("fp32", "bf16", "auto")


def bf16_is_fast() -> bool:
    """True on CPUs with AMX tiles (or any CUDA device), where bf16 matrix products run in hardware."""
    is_amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    return torch.cuda.is_available() or bool(is_amx())


POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens")  # sentence-transformers' concatenation order


def pool(hidden: torch.Tensor, mask: torch.Tensor, modes: tuple[str, ...]) -> torch.Tensor:
    """Sentence vectors (B, len(modes) * C) from hidden states (B, T, C) and a 0/1 mask (B, T)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(hidden[:, 0])  # (B, C): the [CLS] position (we pad on the right)
        elif mode == "max":
            out.append(hidden.masked_fill(m == 0, float("-inf")).amax(dim=1))  # (B, C)
        else:  # mean, mean_sqrt_len_tokens
            n = m.sum(dim=1).clamp(min=1e-9)  # (B, 1): number of real tokens
            out.append((hidden * m).sum(dim=1) / (n if mode == "mean" else n.sqrt()))  # (B, C)
    return torch.cat(out, dim=-1)


class FirstTokens:
    """Any tokenizer with WordPiece's ``max_length`` option: ids cut to the first ``max_length``.

    For an encoder pre-trained here on raw windows of a char or BPE tokenizer (no [CLS]/[SEP]
    to keep), so that `SentenceEncoder` cuts and counts long texts the same way for both."""

    def __init__(self, tokenizer, max_length: int | None):
        self.tokenizer, self.max_length = tokenizer, max_length

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text)
        return ids if self.max_length is None else ids[:self.max_length]

    def id_to_token(self, i: int) -> str:
        return self.tokenizer.id_to_token(i)

    def tokenize(self, text: str) -> list[str]:
        return [self.id_to_token(i) for i in self.encode(text)]


class SentenceEncoder(nn.Module):
    """Texts -> fixed-size vectors: token ids -> BertModel -> pooling (-> L2 normalisation).

    Build it with `llmlab.weights.hf.load_sentence_encoder(folder)` (or `llmlab.weights.registry.
    load_encoder`, which also reads our own masked-LM checkpoints). The tokenizer is a WordPiece
    one with ``max_length`` set, or any tokenizer wrapped in `FirstTokens`."""

    def __init__(self, tokenizer: WordPieceTokenizer | FirstTokens, bert: BertModel,
                 pooling: tuple[str, ...] = ("mean",), normalize: bool = False, lowercase: bool = False):
        super().__init__()
        unknown = [m for m in pooling if m not in POOLING_MODES]
        if unknown or not pooling:
            raise LlmlabError(f"pooling {list(pooling)} is not supported (choose from {', '.join(POOLING_MODES)})")
        if tokenizer.max_length is None or tokenizer.max_length > bert.config.max_position_embeddings:
            raise LlmlabError(f"tokenizer max_length {tokenizer.max_length} must be set and at most "
                              f"{bert.config.max_position_embeddings}")
        self.tokenizer, self.bert = tokenizer, bert
        self.pooling = tuple(m for m in POOLING_MODES if m in pooling)
        self.normalize, self.lowercase = normalize, lowercase
        self.truncated = 0  # texts cut to max_seq_length so far
        self._uncut = copy.copy(tokenizer)  # shares vocabulary and piece cache; counts what was cut
        self._uncut.max_length = None

    @property
    def max_seq_length(self) -> int:
        return self.tokenizer.max_length

    @property
    def dim(self) -> int:
        """Length of one sentence vector."""
        return len(self.pooling) * self.bert.config.hidden_size

    def _ids(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise LlmlabError(f"expected text (str), got {type(text).__name__}")
        text = text.lower() if self.lowercase else text
        ids = self.tokenizer.encode(text)
        if len(ids) == self.max_seq_length:  # at the limit: cut, or exactly that long?
            self.truncated += len(self._uncut.encode(text)) > self.max_seq_length
        return ids

    def _batch(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids and their 0/1 mask, both (B, T): T is the longest row rounded up to a
        multiple of 8 (32 past 64 tokens). The CPU kernels keep a compiled primitive per input shape:
        with every length its own shape, indexing 3,072 chunks in bf16 grew from 490 MB to 1.2 GB;
        with about twenty shapes it stays near 500 MB, at the same speed (bench: 25 s either way)."""
        T = max(map(len, rows))
        step = 8 if T <= 64 else 32
        T = min(-(-T // step) * step, self.bert.config.max_position_embeddings)  # never past the positions
        pad = self.bert.config.pad_token_id or 0  # any id will do: the mask hides padding
        device = self.bert.embeddings.word_embeddings.weight.device
        ids = torch.tensor([r + [pad] * (T - len(r)) for r in rows], device=device)  # (B, T)
        lengths = torch.tensor([len(r) for r in rows], device=device)  # (B,)
        mask = (torch.arange(T, device=device) < lengths[:, None]).long()  # (B, T); "[PAD]" typed in text stays
        return ids, mask

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> torch.Tensor:
        """Sentence vectors (N, dim), float32 on the CPU, in the order of ``texts``.

        Texts are sorted by token count so that each batch pads only to its own longest."""
        if isinstance(texts, str):
            raise LlmlabError("encode expects a list of texts, got one str; wrap it in a list")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise LlmlabError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
        rows = [self._ids(t) for t in texts]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]), reverse=True)  # longest first
        out = torch.empty(len(rows), self.dim)
        starts = range(0, len(order), batch_size)
        if progress:
            starts = tqdm(starts, desc="encode", unit="batch")
        with torch.inference_mode():
            for s in starts:
                idx = order[s:s + batch_size]
                ids, mask = self._batch([rows[i] for i in idx])
                hidden = self.bert(ids, mask).float()  # (B, T, C); pooled in float32 whatever the weights
                vectors = pool(hidden, mask, self.pooling)  # (B, dim)
                if self.normalize:
                    vectors = F.normalize(vectors, p=2, dim=1)
                out[idx] = vectors.float().cpu()
        return out

    @property
    def precision(self) -> str:
        return "bf16" if self.bert.embeddings.word_embeddings.weight.dtype == torch.bfloat16 else "fp32"

    def to_precision(self, precision: str) -> "SentenceEncoder":
        """Run in ``fp32``, ``bf16`` or ``auto`` (bf16 where the CPU multiplies bf16 matrices in hardware).

        On CPUs with AMX tiles bf16 matrix products are several times faster than fp32 and the
        sentence vectors keep cosine >= 0.999 to the fp32 ones (tests/models/test_encoder.py);
        without AMX, bf16 is emulated and slower, so ``auto`` stays in fp32 there."""
        if precision not in ENCODER_PRECISIONS:
            raise LlmlabError(f"unknown encoder precision {precision!r} (choose from {', '.join(ENCODER_PRECISIONS)})")
        if precision == "auto":
            precision = "bf16" if bf16_is_fast() else "fp32"
        self.bert.to(torch.bfloat16 if precision == "bf16" else torch.float32)
        return self

    def token_embeddings(self, text: str) -> tuple[list[str], torch.Tensor]:
        """The tokens of ``text`` ([CLS] ... [SEP]) and their contextual vectors (T, C)."""
        ids = self._ids(text)
        with torch.inference_mode():
            ids_t, mask = self._batch([ids])
            hidden = self.bert(ids_t, mask)[0, :len(ids)]  # (T, C): the padding to a multiple of 8 left out
        return [self.tokenizer.id_to_token(i) for i in ids], hidden.float().cpu()

    def __repr__(self) -> str:
        c = self.bert.config
        return (f"SentenceEncoder(layers={c.num_hidden_layers}, hidden={c.hidden_size}, pooling={self.pooling}, "
                f"normalize={self.normalize}, max_seq_length={self.max_seq_length}, "
                f"parameters={self.bert.num_parameters():,})")
