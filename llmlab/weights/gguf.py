"""Load GGUF models (the llama.cpp format) into our `Decoder`.

After the key-value metadata (read by `llmlab.tokenize.gguf`), a GGUF file lists its
tensors: name, dimensions (innermost first), type, and offset into the data section,
which starts at the next multiple of ``general.alignment`` (default 32). Quantized types
store blocks of 32 values:

    Q8_0: f16 scale d, 32 x int8 q            -> d * q
    Q4_0: f16 scale d, 16 bytes of 4-bit q    -> d * (q - 8)
    Q4_1: f16 scale d, f16 min m, 16 bytes q  -> d * q + m
    (low nibbles hold values 0..15 of the block, high nibbles 16..31)

Everything is dequantized to float32 at load time. The model's config comes from the
file's own metadata (``llama.block_count``, ``llama.attention.head_count_kv``...), the
tokenizer from ``tokenizer.ggml.*`` and the chat template from ``tokenizer.chat_template``.
llama.cpp's converter permutes the rows of q/k weights for its interleaved RoPE; we undo
that so the weights match HF's half-split layout used by `llmlab.nn.positions`.

Spec: github.com/ggml-org/ggml/blob/master/docs/gguf.md. Tests: tests/weights/test_gguf.py
(dequantization vs the ``gguf`` package, SmolLM2 logits and greedy ids vs HF transformers).
"""

import ctypes
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmlab.errors import LlmlabError
from llmlab.models.decoder import Decoder, DecoderConfig, quantize_block
from llmlab.tokenize.bpe import BPETokenizer
from llmlab.tokenize.gguf import parse_metadata

# ggml type id -> (name, values per block, bytes per block)
GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
              8: ("Q8_0", 32, 34), 30: ("BF16", 1, 2)}
KNOWN_UNSUPPORTED = {6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K",
                     14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
                     20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
                     27: "I64", 28: "F64", 29: "IQ1_M"}

try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc (macOS, musl): nothing to trim
    _LIBC = None
_M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h

PRECISIONS = ("fp32", "int8", "int4")

# GGUF tensor name -> our parameter name, Llama family ("{i}" is the layer)
LLAMA_NAMES = {
    "token_embd.weight": "embed_tokens.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{i}.attn_norm.weight": "layers.{i}.input_layernorm.weight",
    "blk.{i}.attn_q.weight": "layers.{i}.self_attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "layers.{i}.self_attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "layers.{i}.self_attn.v_proj.weight",
    "blk.{i}.attn_output.weight": "layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_norm.weight": "layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.ffn_gate.weight": "layers.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "layers.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "layers.{i}.mlp.down_proj.weight",
}


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # torch order (outermost first)
    ggml_type: int
    offset: int  # absolute byte offset in the file


class GGUFFile:
    """Metadata and tensor directory of a GGUF file. Tensor bytes are read one tensor at a
    time (``os.pread``), so loading never holds more than one raw tensor in memory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise LlmlabError(f"{self.path}: no such GGUF file")
        self.size = self.path.stat().st_size
        if self.size < 24:
            raise LlmlabError(f"{self.path}: too small to be a GGUF file")
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            self.meta, r = parse_metadata(buf, str(self.path))
            infos = []
            for _ in range(self.meta["GGUF.tensor_count"]):
                name = r.string()
                dims = [r.take("<Q") for _ in range(r.take("<I"))]
                infos.append((name, tuple(reversed(dims)), r.take("<I"), r.take("<Q")))
            header_end = r.pos
        align = int(self.meta.get("general.alignment", 32))
        data_start = (header_end + align - 1) // align * align
        self.tensors = {n: TensorInfo(n, s, t, data_start + o) for n, s, t, o in infos}

    def dequantize(self, name: str) -> torch.Tensor:
        """One tensor as float32, in torch's shape order."""
        info = self.tensors[name]
        if info.ggml_type not in GGML_TYPES:
            kind = KNOWN_UNSUPPORTED.get(info.ggml_type, f"type {info.ggml_type}")
            supported = ", ".join(t[0] for t in GGML_TYPES.values())
            raise LlmlabError(f"{self.path}: tensor {name} is {kind}, which is not supported (supported: {supported})")
        kind, block, nbytes = GGML_TYPES[info.ggml_type]
        count = int(np.prod(info.shape))
        size = count // block * nbytes
        if info.offset + size > self.size:
            raise LlmlabError(f"{self.path}: truncated file (tensor {name} runs past the end)")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            raw = np.frombuffer(os.pread(fd, size, info.offset), dtype=np.uint8)
        finally:
            os.close(fd)
        values = _DEQUANTIZE[kind](raw, count)
        return torch.from_numpy(values).reshape(info.shape)


def _f32(raw, n):
    return raw.view(np.float32).copy()


def _f16(raw, n):
    return raw.view(np.float16).astype(np.float32)


def _bf16(raw, n):
    return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def _q8_0(raw, n):
    blocks = raw.reshape(-1, 34)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (n_blocks, 1)
    q = blocks[:, 2:].view(np.int8).astype(np.float32)  # (n_blocks, 32)
    q *= d  # in place: loading keeps one float32 copy of each tensor at a time
    return q.reshape(n)


def _nibbles(qs):
    """(n_blocks, 16) bytes -> (n_blocks, 32) values: low nibbles first, then high."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)


def _q4_0(raw, n):
    blocks = raw.reshape(-1, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    q = _nibbles(blocks[:, 2:])
    q -= 8.0
    q *= d
    return q.reshape(n)


def _q4_1(raw, n):
    blocks = raw.reshape(-1, 20)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
    q = _nibbles(blocks[:, 4:])
    q *= d
    q += m
    return q.reshape(n)


_DEQUANTIZE = {"F32": _f32, "F16": _f16, "BF16": _bf16, "Q8_0": _q8_0, "Q4_0": _q4_0, "Q4_1": _q4_1}


def unpermute_rope(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's q/k row permutation (interleaved pairs -> first half / second half)."""
    rows = w.shape[0]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def config_from_metadata(meta: dict[str, Any], source: str = "GGUF") -> DecoderConfig:
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise LlmlabError(f"{source}: architecture {arch!r} is not supported (supported: llama)")

    def key(name, default=None):
        value = meta.get(f"llama.{name}", default)
        if value is None:
            raise LlmlabError(f"{source}: metadata key llama.{name} is missing")
        return value

    n_heads = key("attention.head_count")
    dim = key("embedding_length")
    return DecoderConfig(
        family="llama",
        vocab_size=meta.get("llama.vocab_size") or len(meta["tokenizer.ggml.tokens"]),
        dim=dim,
        n_layers=key("block_count"),
        n_heads=n_heads,
        n_kv_heads=key("attention.head_count_kv", n_heads),
        head_dim=key("rope.dimension_count", dim // n_heads),
        ffn_dim=key("feed_forward_length"),
        max_seq_len=key("context_length"),
        norm_eps=key("attention.layer_norm_rms_epsilon"),
        rope_theta=key("rope.freq_base", 10000.0),
        tie_embeddings="output.weight" not in meta.get("_tensor_names", ()),
    )


@dataclass
class DecoderBundle:
    """What generation needs: the model, its tokenizer and config, and its chat template."""

    model: Decoder
    tokenizer: BPETokenizer
    config: DecoderConfig
    chat_template: str | None
    metadata: dict[str, Any]


def load_gguf(path: str | Path, name: str | None = None, precision: str = "fp32") -> DecoderBundle:
    """Decoder (eval mode), tokenizer and chat template of a Llama-family GGUF file.

    ``precision="fp32"`` dequantizes every weight to float32 (the exact path); ``"int8"``
    and ``"int4"`` re-quantize each block as soon as it is loaded (llmlab.nn.quantized), so
    the full float32 model never sits in memory. int4 holds Q4_1 weights without loss.
    """
    if precision not in PRECISIONS:
        raise LlmlabError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return_large_blocks_to_os()
    gguf = GGUFFile(path)
    try:
        meta = dict(gguf.meta, _tensor_names=set(gguf.tensors))
        cfg = config_from_metadata(meta, str(gguf.path))
        tokenizer = BPETokenizer.from_gguf_metadata(gguf.meta, name=name or str(gguf.path))
        names = {}  # our parameter name -> GGUF tensor name
        for gguf_name in gguf.tensors:
            ours = _our_name(gguf_name)
            if ours is None:
                raise LlmlabError(f"{gguf.path}: unexpected tensor {gguf_name}")
            names[ours] = gguf_name
        with torch.device("meta"):
            model = Decoder(cfg)
        expected = set(model.state_dict()) - ({"lm_head.weight"} if cfg.tie_embeddings else set())
        if expected - set(names):
            raise LlmlabError(f"{gguf.path}: tensors missing for {sorted(expected - set(names))[:5]}")

        def load(module, prefix: str) -> None:
            # Parameters are set directly: load_state_dict(assign=True) keeps an extra copy of
            # large tensors (seen: +74 MB for the embedding).
            for key in list(module.state_dict()):
                w = gguf.dequantize(names[prefix + key])
                if key.endswith("q_proj.weight"):
                    w = unpermute_rope(w, cfg.n_heads)
                elif key.endswith("k_proj.weight"):
                    w = unpermute_rope(w, cfg.n_kv_heads)
                owner, _, leaf = key.rpartition(".")
                setattr(module.get_submodule(owner), leaf, torch.nn.Parameter(w))

        load(model.embed_tokens, "embed_tokens.")
        if cfg.tie_embeddings:
            model.lm_head.weight = model.embed_tokens.weight
        else:
            load(model.lm_head, "lm_head.")
        if precision != "fp32":
            model.quantize_head_int8()
        load(model.norm, "norm.")
        for i, block in enumerate(model.layers):  # one block at a time keeps the peak low
            load(block, f"layers.{i}.")
            if precision != "fp32":
                quantize_block(block, precision)
            release_freed_memory()
    except KeyError as e:
        raise LlmlabError(f"{gguf.path}: malformed GGUF metadata (missing {e})") from None
    except (ValueError, RuntimeError) as e:
        raise LlmlabError(f"{gguf.path}: cannot build the model ({e})") from None
    # keep the scalar metadata; the vocabulary arrays now live in the tokenizer
    meta = {k: v for k, v in gguf.meta.items() if not isinstance(v, list) or len(v) < 1000}
    return DecoderBundle(model.eval(), tokenizer, cfg, gguf.meta.get("tokenizer.chat_template"), meta)


def release_freed_memory() -> None:
    """Hand memory freed by the loader back to the OS. glibc keeps freed blocks of a few MB in
    its heap (its mmap threshold grows as large blocks are freed), which would otherwise count
    in the process's resident size for as long as it runs. A no-op where glibc is absent."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def return_large_blocks_to_os() -> None:
    """Make glibc serve every block of 16 MB or more with its own mmap, released on free, instead
    of letting its threshold drift up and grow a heap that never shrinks: without it the resident
    size creeps up by ~15 MB per long prompt. (At 1 MB, prompts run 30% slower: every activation
    would be fresh, zeroed pages.) Process-wide; a no-op without glibc."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, 16 << 20)


def _our_name(gguf_name: str) -> str | None:
    parts = gguf_name.split(".")
    if parts[0] == "blk":
        template, layer = ".".join(["blk", "{i}", *parts[2:]]), parts[1]
        ours = LLAMA_NAMES.get(template)
        return ours.replace("{i}", layer) if ours else None
    return LLAMA_NAMES.get(gguf_name)
