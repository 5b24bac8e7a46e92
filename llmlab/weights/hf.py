"""Hugging Face model folders (config.json + model.safetensors) onto our modules.

Format: an HF folder holds ``config.json`` (architecture sizes, ``model_type``) and
``model.safetensors`` (named tensors; the safetensors format of HF ``safetensors``). A
sentence-transformers folder adds ``modules.json`` (the pipeline: Transformer, Pooling,
Normalize), ``1_Pooling/config.json`` and ``sentence_bert_config.json`` (``max_seq_length``).

Each model family has one flat rename table from HF tensor names to our parameter names
(regex substitutions plus a pattern of tensors we do not use); `load_state` checks both
directions: every HF tensor lands on one of our parameters, every parameter is loaded, shapes
agree. ``tests/models/test_encoder.py`` checks this on all-MiniLM-L6-v2 and checks the loaded
model against ``transformers`` and ``sentence-transformers``.

Supported ``model_type``: ``bert`` (encoder), ``llama`` and ``gpt2`` (decoders). GPT-2 stores
q/k/v as one fused ``c_attn`` in transposed ``Conv1D`` layout, so its table is a function.
Limits: one ``model.safetensors`` file (no sharded ``*.index.json`` checkpoints, no pickled
``pytorch_model.bin``); weights are loaded as float32.
"""

import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from llmlab.errors import LlmlabError
from llmlab.fileio import read_text
from llmlab.models.decoder import Decoder, DecoderConfig
from llmlab.models.encoder import POOLING_MODES, BertConfig, BertModel, SentenceEncoder
from llmlab.tokenize.wordpiece import WordPieceTokenizer

SUPPORTED_MODEL_TYPES = ("bert", "llama", "gpt2")  # config.json "model_type" values that have a rename table below

# --- rename tables: (regex, replacement) applied in order, then names matching *_IGNORED are dropped ---
BERT_RENAMES = [
    (r"^bert\.", ""),  # task models (BertForMaskedLM, BertForSequenceClassification) keep the encoder in "bert."
    (r"LayerNorm\.gamma$", "LayerNorm.weight"),  # LayerNorm names of checkpoints converted from TensorFlow
    (r"LayerNorm\.beta$", "LayerNorm.bias"),
]
BERT_IGNORED = r"^(pooler\.|embeddings\.position_ids$|cls\.)"  # [CLS] pooler, a position buffer, MLM/NSP heads
LLAMA_RENAMES = [(r"^model\.", "")]  # model.layers.0.self_attn.q_proj.weight -> layers.0.self_attn.q_proj.weight
LLAMA_IGNORED = r"rotary_emb\.inv_freq$"  # a buffer older checkpoints saved; we compute it


# --- reading a folder --------------------------------------------------------------------
def read_json(path: Path, expect: type = dict, missing_hint: str = ""):
    """The parsed JSON of a file (a dict, or a list with ``expect=list``), or a one-line LlmlabError."""
    if not path.exists():
        raise LlmlabError(f"{path.parent}: no {path.name} here{missing_hint}")
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise LlmlabError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, expect):
        raise LlmlabError(f"{path}: expected a JSON {'object' if expect is dict else 'list'}, "
                          f"got {type(data).__name__}")
    return data


def read_hf_folder(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json as a dict, every tensor of model.safetensors by its HF name)."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise LlmlabError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise LlmlabError(f"{folder}: is a file, expected a model folder with config.json and model.safetensors")
    hint = "; an HF model folder holds config.json and model.safetensors"
    config = read_json(folder / "config.json", missing_hint=hint)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise LlmlabError(f"{folder / 'config.json'}: model_type {model_type!r} is not supported "
                          f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        if (folder / "model.safetensors.index.json").is_file():
            why = "sharded checkpoints (model.safetensors.index.json) are not supported"
        elif (folder / "pytorch_model.bin").is_file():
            why = "only safetensors are read, not pickled pytorch_model.bin"
        else:
            why = "an HF model folder holds config.json and model.safetensors"
        raise LlmlabError(f"{folder}: no model.safetensors here; {why}")
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError) as e:
        raise LlmlabError(f"{weights}: not a readable safetensors file ({e}); "
                          "is the file complete? download it again") from None
    return config, tensors


# --- names ---------------------------------------------------------------------------------
def rename(hf_names, renames: list[tuple[str, str]], ignored: str) -> tuple[dict[str, str], list[str]]:
    """({HF name: our name} for the tensors we use, [HF names we ignore])."""
    mapping, skipped = {}, []
    for hf in hf_names:
        name = hf
        for pattern, replacement in renames:
            name = re.sub(pattern, replacement, name)
        if re.search(ignored, name):
            skipped.append(hf)
        else:
            mapping[hf] = name
    return mapping, skipped


def _listing(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_state(model: nn.Module, tensors: dict[str, torch.Tensor], renames: list[tuple[str, str]],
               ignored: str, source: str) -> None:
    """Copy HF tensors into ``model``'s parameters (as their dtype), checking names both ways and shapes."""
    mapping, _ = rename(tensors, renames, ignored)
    ours = model.state_dict()
    unknown = sorted(hf for hf, name in mapping.items() if name not in ours)
    if unknown:
        raise LlmlabError(f"{source}: tensors that fit no parameter of {type(model).__name__}: {_listing(unknown)}")
    missing = sorted(set(ours) - set(mapping.values()))
    if missing:
        raise LlmlabError(f"{source}: no tensor for parameters {_listing(missing)}")
    if len(set(mapping.values())) < len(mapping):
        seen: dict[str, str] = {}
        for hf, name in mapping.items():
            if name in seen:
                raise LlmlabError(f"{source}: both {seen[name]} and {hf} would load {name}")
            seen[name] = hf
    for hf, name in mapping.items():
        if tensors[hf].shape != ours[name].shape:
            raise LlmlabError(f"{source}: {hf} has shape {tuple(tensors[hf].shape)}, "
                              f"config.json implies {tuple(ours[name].shape)}")
    with torch.no_grad():
        for hf, name in mapping.items():
            ours[name].copy_(tensors[hf])  # state_dict shares storage with the parameters


# --- BERT ------------------------------------------------------------------------------------
def load_bert(path: str | Path) -> tuple[BertModel, BertConfig]:
    """A BERT encoder from an HF folder, in eval mode, float32."""
    folder = Path(path).expanduser()
    config, tensors = read_hf_folder(folder)
    if config["model_type"] != "bert":
        raise LlmlabError(f"{folder / 'config.json'}: model_type {config['model_type']!r} is not a BERT model")
    cfg = BertConfig.from_hf_config(config, source=str(folder / "config.json"))
    model = BertModel(cfg)
    load_state(model, tensors, BERT_RENAMES, BERT_IGNORED, str(folder / "model.safetensors"))
    return model.float().eval(), cfg


def load_sentence_encoder(path: str | Path) -> SentenceEncoder:
    """A sentence-transformers folder (or a plain BERT folder: mean pooling, no normalisation)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise LlmlabError(f"{folder}: no such folder" if not folder.exists() else f"{folder}: expected a folder")
    bert_dir, pooling, normalize = folder, ("mean",), False
    if (folder / "modules.json").is_file():
        modules = read_json(folder / "modules.json", expect=list)
        if not all(isinstance(m, dict) for m in modules):
            raise LlmlabError(f"{folder / 'modules.json'}: expected a list of modules")
        for m in modules:
            kind = str(m.get("type", "")).rsplit(".", 1)[-1]
            if kind == "Transformer":
                bert_dir = folder / m.get("path", "")
            elif kind == "Pooling":
                pooling = _pooling_modes(folder / m.get("path", "") / "config.json")
            elif kind == "Normalize":
                normalize = True
            else:
                raise LlmlabError(f"{folder / 'modules.json'}: module {m.get('type')!r} is not supported "
                                  "(only Transformer, Pooling, Normalize)")
    bert, cfg = load_bert(bert_dir)
    settings = {}
    if (bert_dir / "sentence_bert_config.json").is_file():
        settings = read_json(bert_dir / "sentence_bert_config.json")
    max_seq_length = settings.get("max_seq_length") or cfg.max_position_embeddings
    if not isinstance(max_seq_length, int) or not 2 <= max_seq_length <= cfg.max_position_embeddings:
        raise LlmlabError(f"{bert_dir / 'sentence_bert_config.json'}: max_seq_length {max_seq_length!r} "
                          f"must be an integer in 2..{cfg.max_position_embeddings}")
    if (bert_dir / "vocab.txt").is_file():
        tokenizer = WordPieceTokenizer.from_vocab_txt(bert_dir / "vocab.txt", max_length=max_seq_length)
    elif (bert_dir / "tokenizer.json").is_file():
        tokenizer = WordPieceTokenizer.from_file(bert_dir / "tokenizer.json", max_length=max_seq_length)
    else:
        raise LlmlabError(f"{bert_dir}: no vocab.txt or tokenizer.json here")
    return SentenceEncoder(tokenizer, bert, pooling, normalize, lowercase=bool(settings.get("do_lower_case")))


LEGACY_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                       "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                       "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


def _pooling_modes(path: Path) -> tuple[str, ...]:
    """Pooling modes of a sentence-transformers Pooling config: new "pooling_mode" or legacy flags."""
    if not path.is_file():
        return ("mean",)  # sentence-transformers' default
    config = read_json(path)
    mode = config.get("pooling_mode")
    if mode is not None:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for key, m in LEGACY_POOLING_KEYS.items() if config.get(key)) or ("mean",)
    unsupported = [m for m in modes if m not in POOLING_MODES]
    if unsupported:
        raise LlmlabError(f"{path}: pooling {', '.join(map(str, unsupported))} is not supported "
                          f"(supported: {', '.join(POOLING_MODES)})")
    return modes


# --- decoders: Llama and GPT-2 ------------------------------------------------------------------
def llama_state_from_hf(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF ``LlamaForCausalLM`` tensors under our `Decoder` names (tied head included if present)."""
    mapping, _ = rename(tensors, LLAMA_RENAMES, LLAMA_IGNORED)
    return {ours: tensors[hf] for hf, ours in mapping.items()}


def gpt2_state_from_hf(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF ``GPT2LMHeadModel`` tensors under our names: Conv1D weights (in, out) are transposed to
    Linear (out, in), and the fused ``c_attn`` is split into q/k/v projections."""
    out = {}
    for hf, t in tensors.items():
        name = re.sub(r"^transformer\.", "", hf)
        if name.endswith(("attn.bias", "attn.masked_bias")) and t.dim() > 1:
            continue  # old checkpoints store the causal mask as a buffer
        name = re.sub(r"^wte\.", "embed_tokens.", name)
        name = re.sub(r"^wpe\.", "embed_positions.", name)
        name = re.sub(r"^ln_f\.", "norm.", name)
        name = re.sub(r"^h\.(\d+)\.", r"layers.\1.", name)
        if name.endswith("attn.c_attn.weight") or name.endswith("attn.c_attn.bias"):
            kind = name.rsplit(".", 1)[1]
            parts = (t.T if kind == "weight" else t).chunk(3, dim=0)
            for proj, part in zip(("q_proj", "k_proj", "v_proj"), parts):
                out[name.replace("c_attn." + kind, f"{proj}.{kind}")] = part.contiguous()
            continue
        name = name.replace("attn.c_proj.", "attn.o_proj.")
        if name.endswith(".weight") and ("attn.o_proj" in name or "mlp.c_" in name):
            t = t.T.contiguous()
        out[name] = t
    if "lm_head.weight" not in out and "embed_tokens.weight" in out:
        out["lm_head.weight"] = out["embed_tokens.weight"]
    return out


def decoder_config_from_hf(config: dict, source: str = "config.json") -> DecoderConfig:
    """Our `DecoderConfig` from an HF Llama or GPT-2 config.json."""
    try:
        if config["model_type"] == "gpt2":
            return DecoderConfig(family="gpt2", vocab_size=config["vocab_size"], dim=config["n_embd"],
                                 n_layers=config["n_layer"], n_heads=config["n_head"],
                                 ffn_dim=config.get("n_inner") or 4 * config["n_embd"],
                                 max_seq_len=config["n_positions"], norm_eps=config.get("layer_norm_epsilon", 1e-5),
                                 tie_embeddings=True)
        return DecoderConfig(family="llama", vocab_size=config["vocab_size"], dim=config["hidden_size"],
                             n_layers=config["num_hidden_layers"], n_heads=config["num_attention_heads"],
                             n_kv_heads=config.get("num_key_value_heads"), head_dim=config.get("head_dim"),
                             ffn_dim=config["intermediate_size"], max_seq_len=config["max_position_embeddings"],
                             norm_eps=config.get("rms_norm_eps", 1e-6), rope_theta=config.get("rope_theta", 10000.0),
                             tie_embeddings=config.get("tie_word_embeddings", False))
    except KeyError as e:
        raise LlmlabError(f"{source}: missing key {e}") from None


def load_hf_decoder(path: str | Path) -> tuple[Decoder, DecoderConfig]:
    """A Llama or GPT-2 decoder from an HF folder, eval mode, float32."""
    folder = Path(path).expanduser()
    config, tensors = read_hf_folder(folder)
    if config["model_type"] not in ("llama", "gpt2"):
        raise LlmlabError(f"{folder / 'config.json'}: model_type {config['model_type']!r} is not a decoder")
    cfg = decoder_config_from_hf(config, str(folder / "config.json"))
    state = (gpt2_state_from_hf if cfg.family == "gpt2" else llama_state_from_hf)(tensors)
    if cfg.tie_embeddings:
        state.setdefault("lm_head.weight", state.get("embed_tokens.weight"))
    model = Decoder(cfg)
    missing = sorted(set(model.state_dict()) - set(state))
    unknown = sorted(set(state) - set(model.state_dict()))
    if missing or unknown:
        raise LlmlabError(f"{folder}: weights do not fit the config (missing {_listing(missing)}; "
                          f"unexpected {_listing(unknown)})")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise LlmlabError(f"{folder}: {str(e).splitlines()[0]}") from None
    return model.float().eval(), cfg
