"""Our own checkpoint format: a folder per saved step, written atomically.

A checkpoint folder (``RUN/step-000200/``) holds

    model.safetensors       the model's tensors by our parameter names (a tied output head is
                            stored once, as ``embed_tokens.weight``; an encoder's are HF
                            ``BertForMaskedLM``'s: ``bert.*`` and ``cls.predictions.*``)
    config.json             {"llmlab_checkpoint": 1, "model": "decoder" or "encoder",
                             "config": {DecoderConfig or BertConfig fields}, "step": 200,
                             "tokenizer": "llmlab-tokenizer.json", "chat_template": null, ...}
    <tokenizer file>        written by the tokenizer's own ``save`` (read back by `load_tokenizer`)
    trainer.pt              optional training state: optimizer, step, data-sampler and RNG states
                            of python / numpy / torch, the training config; plain tensors, lists and
                            dicts only, so it loads with ``torch.load(weights_only=True)``

and ``RUN/latest`` is a one-line text file naming the newest folder. Saving writes everything
into a hidden temporary folder beside the target and renames it into place, then rewrites
``latest`` atomically (llmlab.fileio), then deletes folders beyond the newest ``keep``: a crash
or a full disk at any moment leaves the previous checkpoint and ``latest`` as they were.

`load_checkpoint(path)` accepts a run folder (follows ``latest``) or a step folder, and the kind
of model the caller expects: a checkpoint of the other kind is a one-line error naming both. A
missing or damaged trainer.pt is a one-line error too, naming the newest older step folder whose
trainer.pt is whole: writing that name into ``latest`` resumes from it. `tokenizer_difference`
compares a tokenizer with the checkpoint's by their saved files, so resuming on a data folder
with another tokenizer of the same size is caught.
``weights/registry.load_decoder(path)`` goes through here, so ``llmlab complete --model RUN``
generates from a trained decoder, and ``load_encoder(path)`` too, so ``llmlab embed --model RUN``
embeds with a masked-LM encoder.
Tests: tests/train/test_checkpoint.py (round trip, simulated OSError mid-write, pruning,
architecture mismatch, damaged trainer.pt, tokenizer comparison, load_decoder and the CLI),
tests/train/test_mlm.py (encoders).
"""

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from llmlab.errors import LlmlabError, TokenizerError
from llmlab.fileio import atomic_write_text, read_text
from llmlab.models.decoder import Decoder, DecoderConfig
from llmlab.models.encoder import BertConfig, BertForMaskedLM

FORMAT_VERSION = 1
LATEST = "latest"
STEP_PREFIX = "step-"
TRAINER = "trainer.pt"
KINDS = {"decoder": (Decoder, DecoderConfig), "encoder": (BertForMaskedLM, BertConfig)}  # "model" in config.json
KIND_NAMES = {"decoder": "a decoder", "encoder": "an encoder"}
KIND_USES = {"decoder": "causal LM; `llmlab complete --model` generates from it",
             "encoder": "BERT, masked LM; `llmlab embed --model` embeds with it"}


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns: the model (eval mode), its config, tokenizer and trainer state."""

    model: Decoder | BertForMaskedLM
    config: DecoderConfig | BertConfig
    tokenizer: Any
    step: int
    path: Path
    chat_template: str | None = None
    trainer: dict | None = None  # the trainer.pt dict, when asked for and present
    meta: dict = field(default_factory=dict)


def kind_of(model_or_config) -> str:
    """"decoder" or "encoder": the kind of a model or of a model config."""
    for kind, classes in KINDS.items():
        if isinstance(model_or_config, classes):
            return kind
    raise LlmlabError(f"cannot save a {type(model_or_config).__name__} checkpoint (only Decoder, BertForMaskedLM)")


def config_dict(cfg) -> dict:
    """The constructor fields of a model config (derived fields such as head_dim left out)."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.init}


def step_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:06d}"


def is_checkpoint(path: str | Path) -> bool:
    """True for a run folder with a ``latest`` file or a step folder whose config.json is ours."""
    p = Path(path)
    if (p / LATEST).is_file():
        return True
    config = p / "config.json"
    if not config.is_file():
        return False
    try:
        return "llmlab_checkpoint" in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def _fsync_tree(folder: Path) -> None:
    for f in folder.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def save_checkpoint(run_dir: str | Path, step: int, model: Decoder | BertForMaskedLM, tokenizer,
                    trainer: dict | None = None, keep: int = 3, chat_template: str | None = None,
                    extra: dict | None = None) -> Path:
    """Write ``run_dir/step-XXXXXX`` atomically, point ``latest`` at it, keep the newest ``keep``.

    ``extra``: more keys for config.json (an encoder records its [MASK] id there).

    Raises LlmlabError (naming the cause, e.g. no space left) when the disk refuses; the
    previous checkpoint is then untouched."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    name = step_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=run))
    try:
        kind, cfg = kind_of(model), model.config
        state = {k: v.detach().to("cpu", torch.float32).contiguous()
                 for k, v in model.state_dict().items()}
        if kind == "decoder" and cfg.tie_embeddings:
            state.pop("lm_head.weight", None)  # the same tensor as embed_tokens.weight
        save_file(state, str(tmp / "model.safetensors"))
        tok_file = Path(tokenizer.save(tmp)).name
        meta = {"llmlab_checkpoint": FORMAT_VERSION, "model": kind, "config": config_dict(cfg), "step": step,
                "tokenizer": tok_file, "chat_template": chat_template, **(extra or {})}
        (tmp / "config.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if trainer is not None:
            torch.save(trainer, tmp / "trainer.pt")
        _fsync_tree(tmp)
        final = run / name
        if final.exists():  # saving the same step again: move the old one aside first
            old = run / f".{name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        atomic_write_text(run / LATEST, name + "\n")
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        previous = latest_step_dir(run)
        kept = f"; the previous checkpoint {previous.name} is intact" if previous else ""
        raise LlmlabError(f"{run}: cannot save checkpoint {name} ({e.strerror or e}){kept}") from None
    _prune(run, keep, protect=name)
    return run / name


def _prune(run: Path, keep: int, protect: str) -> None:
    steps = sorted(p for p in run.glob(f"{STEP_PREFIX}*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        if old.name != protect:
            shutil.rmtree(old, ignore_errors=True)


def latest_step_dir(run_dir: str | Path) -> Path | None:
    """The folder ``latest`` names, or None when the run has no checkpoint yet."""
    pointer = Path(run_dir) / LATEST
    if not pointer.is_file():
        return None
    name = read_text(pointer).strip()
    folder = Path(run_dir) / name
    if not name.startswith(STEP_PREFIX) or not folder.is_dir():
        raise LlmlabError(f"{pointer}: names {name!r}, which is not a checkpoint folder here")
    return folder


def resolve(path: str | Path) -> Path:
    """A step folder from a run folder (via ``latest``) or a step folder itself."""
    p = Path(path).expanduser()
    if (p / LATEST).is_file():
        return latest_step_dir(p)
    if (p / "config.json").is_file():
        return p
    raise LlmlabError(f"{p}: not a checkpoint (no {LATEST} file and no config.json)")


def read_meta(step_dir: Path, kind: str | None = "decoder") -> dict:
    """config.json of a step folder; a checkpoint of another kind than ``kind`` (None: any) is an error."""
    try:
        meta = json.loads(read_text(step_dir / "config.json"))
    except json.JSONDecodeError as e:
        raise LlmlabError(f"{step_dir / 'config.json'}: invalid JSON ({e.msg})") from None
    if not isinstance(meta, dict) or "llmlab_checkpoint" not in meta:
        raise LlmlabError(f"{step_dir / 'config.json'}: not an llmlab checkpoint config")
    saved = meta.get("model")
    if saved not in KINDS:
        raise LlmlabError(f"{step_dir}: checkpoint of an unknown model kind {saved!r} (expected {', '.join(KINDS)})")
    if kind is not None and saved != kind:
        raise LlmlabError(f"{step_dir}: this checkpoint is {KIND_NAMES[saved]} ({KIND_USES[saved]}), "
                          f"not {KIND_NAMES[kind]}")
    return meta


def describe(cfg: DecoderConfig | BertConfig) -> str:
    if isinstance(cfg, BertConfig):
        return (f"bert {cfg.num_hidden_layers} layers, {cfg.num_attention_heads} heads, {cfg.hidden_size} dims, "
                f"vocab {cfg.vocab_size}, context {cfg.max_position_embeddings}")
    return (f"{cfg.family} {cfg.n_layers} layers, {cfg.n_heads} heads, {cfg.dim} dims, "
            f"vocab {cfg.vocab_size}, context {cfg.max_seq_len}")


def check_same_architecture(saved: DecoderConfig | BertConfig, wanted: DecoderConfig | BertConfig,
                            where: Path) -> None:
    """LlmlabError naming both architectures when a checkpoint does not fit the run's model."""
    if asdict(saved) != asdict(wanted):
        diff = [k for k in asdict(saved) if asdict(saved)[k] != asdict(wanted)[k]]
        raise LlmlabError(f"{where}: checkpoint is a different architecture ({describe(saved)}) from this "
                          f"run's model ({describe(wanted)}); differs in {', '.join(diff)}")


def load_checkpoint(path: str | Path, trainer: bool = False, expect: DecoderConfig | BertConfig | None = None,
                    kind: str | None = "decoder") -> Checkpoint:
    """Model (float32, eval mode), tokenizer and, with ``trainer=True``, the training state.

    ``kind``: "decoder" (a `Decoder`), "encoder" (a `BertForMaskedLM`) or None (either); with
    ``expect`` (a config the checkpoint must equal), the kind is that config's."""
    from llmlab.tokenize import load_tokenizer

    step_dir = resolve(path)
    if expect is not None:
        kind = kind_of(expect)
    meta = read_meta(step_dir, kind)
    model_class, config_class = KINDS[meta["model"]]
    try:
        cfg = config_class(**meta["config"])
    except (TypeError, ValueError, LlmlabError) as e:
        raise LlmlabError(f"{step_dir / 'config.json'}: bad model config ({e})") from None
    if expect is not None:
        check_same_architecture(cfg, expect, step_dir)
    try:
        state = load_file(str(step_dir / "model.safetensors"))
    except (SafetensorError, OSError) as e:
        raise LlmlabError(f"{step_dir / 'model.safetensors'}: cannot read ({e})") from None
    if meta["model"] == "decoder" and cfg.tie_embeddings and "embed_tokens.weight" in state:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    model = model_class(cfg)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise LlmlabError(f"{step_dir}: weights do not fit the config ({str(e).splitlines()[0]})") from None
    tokenizer = load_tokenizer(step_dir / meta.get("tokenizer", ""))
    state_dict = load_trainer_state(step_dir) if trainer else None
    return Checkpoint(model.eval(), cfg, tokenizer, int(meta.get("step", 0)), step_dir,
                      meta.get("chat_template"), state_dict, meta)


def load_trainer_state(step_dir: Path) -> dict:
    """trainer.pt of a step folder; a missing or damaged one is an error that names an older step to resume from."""
    f = step_dir / TRAINER
    if not f.is_file():
        raise LlmlabError(f"{step_dir}: no {TRAINER} (saved without training state, cannot resume)"
                          f"{_older_step_hint(step_dir)}")
    try:
        state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler fails in many ways on a cut or overwritten file
        size = f.stat().st_size
        if size == 0:
            reason = "empty file"
        elif not zipfile.is_zipfile(f):
            reason = f"{size:,} bytes, not a whole zip archive: cut short or overwritten"
        else:  # torch's first sentence, e.g. "PytorchStreamReader failed locating file data.pkl: file not found"
            first = str(e).strip().split(". ")[0].splitlines()[0] if str(e).strip() else type(e).__name__
            reason = f"{size:,} bytes: {first}"
        raise LlmlabError(f"{f}: damaged ({reason}){_older_step_hint(step_dir)}") from None
    if not isinstance(state, dict):
        raise LlmlabError(f"{f}: damaged (holds a {type(state).__name__}, not a training state dict)"
                          f"{_older_step_hint(step_dir)}")
    return state


def _older_step_hint(step_dir: Path) -> str:
    """How to resume from the newest older step folder whose trainer.pt is at least a whole zip archive
    (its end record is there: not cut short)."""
    run = step_dir.parent
    older = [p for p in run.glob(f"{STEP_PREFIX}*")
             if p.name < step_dir.name and (p / "config.json").is_file() and zipfile.is_zipfile(p / TRAINER)]
    if not older:
        return f"; no older checkpoint with a training state is left in {run}"
    name, pointer = max(older).name, run / LATEST
    return (f"; the older checkpoint {name} has a training state: to resume from it, write its name into "
            f"{pointer} (echo {name} > {pointer})")


def tokenizer_difference(ckpt: Checkpoint, tokenizer) -> str | None:
    """None when ``tokenizer`` is the checkpoint's, else how they differ, e.g. "id 1 is 'A' here, 'a' in the
    checkpoint". Compared as saved files (vocabulary, merges, special tokens), so a tokenizer of the same
    size with other tokens is not taken for the checkpoint's."""
    saved = ckpt.path / ckpt.meta.get("tokenizer", "")
    with tempfile.TemporaryDirectory() as tmp:
        written = Path(tokenizer.save(tmp))
        if written.name == saved.name and saved.is_file() and written.read_bytes() == saved.read_bytes():
            return None
    theirs = ckpt.tokenizer
    if tokenizer.vocab_size != theirs.vocab_size:
        return f"a vocabulary of {tokenizer.vocab_size} here, {theirs.vocab_size} in the checkpoint"
    if tokenizer.kind != theirs.kind:
        return f"a {tokenizer.kind} tokenizer here, {theirs.kind} in the checkpoint"
    for i in range(tokenizer.vocab_size):
        ours, saved_token = _token(tokenizer, i), _token(theirs, i)
        if ours != saved_token:
            return f"id {i} is {ours!r} here, {saved_token!r} in the checkpoint"
    return "the same tokens, other merges or settings"


def _token(tokenizer, i: int) -> str | None:
    try:
        return tokenizer.display_token(i)
    except TokenizerError:  # an unused id in a BPE vocabulary
        return None
