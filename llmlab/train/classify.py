"""Text classification by fine-tuning: a linear head on an encoder or a decoder, trained end to end.

- Encoder (BERT family, e.g. MiniLM; Devlin et al. 2019): the head reads the mean of the final
  hidden states over the real tokens (the pooling sentence-transformers uses for MiniLM).
- Decoder (e.g. SmolLM2): the head reads the final hidden state of the last real token, the
  only position that has seen the whole text under causal attention (as in GPT-1's
  classification fine-tuning, Radford et al. 2018). Its language-model head is not used.

``freeze=True`` trains the head alone on a frozen body (a linear probe, at ``lr``); otherwise every
weight is trained, the body at ``lr`` and the fresh head at ``head_lr`` (10x by default). AdamW, linear
warm-up and cosine decay, gradient clipping. Options, all off by default: label smoothing,
layer-wise lr decay (lower blocks learn more slowly, ELECTRA's recipe), and length-sorted micro-batches
(the same gradient with less padding: banking77's random batches of 32 pad to ~3x the mean length).
Texts longer than ``max_len`` tokens are cut (counted and reported).

Saved as a folder: ``classifier.json`` (kind, base model name or path, label names, max_len),
``head.safetensors``, and ``body.safetensors`` when the body was trained (a frozen body is just
the named base). ``load_classifier(folder)`` rebuilds it; ``predict`` labels texts.
Tests: tests/train/test_classify_head.py (a tiny classifier learns a separable toy task; save and
reload predict the same; frozen body stays unchanged; layer-wise lr groups; micro-batches give the
whole batch's gradient; `llmlab classify --model DIR`).
"""

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from llmlab.errors import LlmlabError
from llmlab.fileio import atomic_write_bytes, atomic_write_text, read_text
from llmlab.train.sft import param_groups, warmup_cosine

CONFIG = "classifier.json"


class TextClassifier(nn.Module):
    """Body (encoder or decoder) -> one vector per text (B, C) -> dropout -> linear head (B, labels)."""

    def __init__(self, body: nn.Module, kind: str, tokenizer, dim: int, labels: list[str], pad_id: int,
                 max_len: int, dropout: float = 0.1):
        super().__init__()
        if kind not in ("encoder", "decoder"):
            raise ValueError(f"kind must be encoder or decoder, not {kind!r}")
        if kind == "decoder":
            body.lm_head = nn.Identity()  # forward now returns the final normed hidden states (B, T, C)
        self.body, self.kind, self.tokenizer = body, kind, tokenizer
        self.labels, self.pad_id, self.max_len = list(labels), pad_id, max_len
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, len(labels))
        self.truncated = 0  # texts cut to max_len so far

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise LlmlabError(f"expected text (str), got {type(text).__name__}")
        ids = self.tokenizer.encode(text)
        if len(ids) > self.max_len:
            self.truncated += 1
            # an encoder keeps its closing [SEP]; a decoder keeps the start of the text
            ids = ids[: self.max_len - 1] + ids[-1:] if self.kind == "encoder" else ids[: self.max_len]
        return ids or [self.pad_id]

    def batch(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids and the 0/1 mask of real tokens, both (B, T)."""
        T = max(map(len, rows))
        device = self.head.weight.device
        ids = torch.tensor([r + [self.pad_id] * (T - len(r)) for r in rows], device=device)  # (B, T)
        lengths = torch.tensor([len(r) for r in rows], device=device)  # (B,)
        mask = (torch.arange(T, device=device) < lengths[:, None]).long()  # (B, T)
        return ids, mask

    def features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One vector per text (B, C)."""
        if self.kind == "encoder":
            from llmlab.models.encoder import pool

            return pool(self.body(ids, mask), mask, ("mean",))  # (B, C)
        hidden = self.body(ids)  # (B, T, C); right padding is never seen by real tokens (causal)
        last = mask.sum(dim=1) - 1  # (B,) index of the last real token
        return hidden[torch.arange(ids.size(0), device=ids.device), last]  # (B, C)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(ids, mask)))  # (B, n_labels)


def build_classifier(model: str, labels: list[str], max_len: int = 128, dropout: float = 0.1) -> TextClassifier:
    """A fresh classifier on the named base: ``minilm`` (or a BERT folder) or ``smollm2`` (or a decoder path)."""
    from llmlab.weights.registry import DECODERS, ENCODERS, load_decoder, load_encoder

    kind = _kind_of(model, DECODERS, ENCODERS)
    if kind == "encoder":
        enc = load_encoder(model, precision="fp32")
        bert = enc.bert
        tok = enc._uncut if hasattr(enc, "_uncut") else enc.tokenizer  # our own cut keeps [SEP]
        limit = min(max_len, bert.config.max_position_embeddings)
        pad = bert.config.pad_token_id if bert.config.pad_token_id is not None else 0  # padding is masked anyway
        return TextClassifier(bert, "encoder", _Lowercase(tok) if enc.lowercase else tok, bert.config.hidden_size,
                              labels, pad, limit, dropout)
    bundle = load_decoder(model, precision="fp32")
    tok = bundle.tokenizer
    pad = tok.special_tokens.get(tok.eos_token, 0) if tok.eos_token else 0
    return TextClassifier(bundle.model, "decoder", tok, bundle.config.dim, labels, pad,
                          min(max_len, bundle.config.max_seq_len), dropout)


class _Lowercase:
    """A tokenizer that lower-cases text first (sentence-transformers' do_lower_case)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text.lower())


def _kind_of(model: str, decoders, encoders) -> str:
    if model in encoders:
        return "encoder"
    if model in decoders:
        return "decoder"
    from llmlab.weights.checkpoint import is_checkpoint, read_meta, resolve

    p = Path(model).expanduser()
    if p.suffix == ".gguf" or (p.is_dir() and any(p.glob("*.gguf"))):
        return "decoder"
    if p.is_dir() and is_checkpoint(p):  # pre-trained here: the checkpoint says which kind it is
        return read_meta(resolve(p), kind=None)["model"]
    if p.is_dir() and (p / "config.json").is_file():
        try:
            model_type = json.loads(read_text(p / "config.json")).get("model_type")
        except json.JSONDecodeError:
            model_type = None
        return "encoder" if model_type == "bert" else "decoder"
    return "encoder"  # let the loader name the problem


# --- training -----------------------------------------------------------------------------------
@dataclass
class ClassifierTrainConfig:
    epochs: float = 3.0
    lr: float = 3e-5  # body; the head learns at head_lr
    head_lr: float | None = None  # None: 10 x lr (a fresh head needs bigger steps than a trained body)
    batch_size: int = 32
    warmup: float = 0.06  # fraction of the steps
    weight_decay: float = 0.01
    clip: float = 1.0
    freeze: bool = False  # train the head only
    seed: int = 0
    label_smoothing: float = 0.0  # share of each target spread evenly over all labels (Szegedy et al. 2016)
    layer_decay: float = 1.0  # layer-wise lr decay: block i of L learns at lr * layer_decay ** (L - i),
    # the embeddings at lr * layer_decay ** (L + 1) (Clark et al. 2020, ELECTRA); 1.0: one lr for the body
    body_dropout: float | None = None  # an encoder body's dropout while training (BERT fine-tunes with 0.1);
    # None: the model's own setting (0 for MiniLM as loaded)
    rdrop: float = 0.0  # R-Drop (Liang et al. 2021): each batch runs twice under different dropout masks and
    # this weight times the symmetric KL divergence of the two predictions joins their mean cross-entropy
    micro_batches: int = 1  # >1: run each batch as this many length-sorted pieces, each padded to its own
    # longest text; the gradient is the same as the whole batch's, with far less padding to compute


@dataclass
class ClassifierHistory:
    steps: int = 0
    seconds: float = 0.0
    texts_per_second: float = 0.0
    loss: list = field(default_factory=list)  # (step, mean loss over the last steps)
    truncated: int = 0


def fit_classifier(clf: TextClassifier, texts: list[str], labels: list[str], cfg: ClassifierTrainConfig,
                   progress: bool = True) -> ClassifierHistory:
    """Train on (texts, labels); labels must be names in ``clf.labels``."""
    from tqdm import tqdm

    index = {n: i for i, n in enumerate(clf.labels)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise LlmlabError(f"training labels not in the classifier's label set: {', '.join(unknown[:5])}")
    if len(texts) != len(labels) or not texts:
        raise LlmlabError("give as many training texts as labels, at least one")
    for p in clf.body.parameters():
        p.requires_grad_(not cfg.freeze)
    if cfg.body_dropout is not None:
        if not hasattr(getattr(clf.body, "config", None), "dropout"):
            raise LlmlabError("body dropout is available for encoder bodies (BERT) only")
        clf.body.config.dropout = cfg.body_dropout  # read by every layer at each forward, in training mode
    rows = [clf.encode(t) for t in texts]
    y = [index[n] for n in labels]
    steps_per_epoch = math.ceil(len(rows) / cfg.batch_size)
    total = max(1, math.ceil(steps_per_epoch * cfg.epochs))
    warmup = max(1, round(cfg.warmup * total)) if cfg.warmup > 0 else 0
    head_lr = cfg.head_lr or (cfg.lr if cfg.freeze else 10 * cfg.lr)
    groups = [] if cfg.freeze else body_groups(clf.body, cfg.lr, cfg.weight_decay, cfg.layer_decay)
    groups.append({"params": list(clf.head.parameters()), "weight_decay": 0.0, "lr": head_lr})
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.AdamW(groups)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, warmup, 0.0))
    trainable = [p for g in groups for p in g["params"]]
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    history = ClassifierHistory(truncated=clf.truncated)
    clf.train()
    if cfg.freeze:
        clf.body.eval()  # no dropout in a frozen body
    start, seen, window = time.perf_counter(), 0, []
    bar = tqdm(total=total, desc="fine-tune", unit="step", disable=not progress)
    step = 0
    while step < total:
        order = list(range(len(rows)))
        rng.shuffle(order)
        for s in range(0, len(order), cfg.batch_size):
            if step >= total:
                break
            idx = order[s:s + cfg.batch_size]
            loss = batch_backward(clf, rows, y, idx, cfg.micro_batches, cfg.label_smoothing, cfg.rdrop)
            torch.nn.utils.clip_grad_norm_(trainable, cfg.clip)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step, seen = step + 1, seen + len(idx)
            window.append(loss)
            if step % 20 == 0 or step == total:
                history.loss.append((step, sum(window) / len(window)))
                window = []
            bar.update(1)
            rate = seen / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{loss:.3f}", texts_s=f"{rate:.0f}")
    bar.close()
    clf.eval()
    history.steps, history.seconds = step, time.perf_counter() - start
    history.texts_per_second = seen / history.seconds if history.seconds else 0.0
    return history


def body_groups(body: nn.Module, lr: float, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
    """AdamW groups for the body: decay on linear weights only, and with ``layer_decay`` < 1 a smaller lr
    the further a parameter sits below the top: block i of L (``encoder.layer.i`` / ``layers.i``) at
    lr * layer_decay ** (L - i), the embeddings at lr * layer_decay ** (L + 1), anything above the
    blocks (a decoder's final norm) at lr."""
    groups = param_groups(body, weight_decay)
    if layer_decay == 1.0:
        return [dict(g, lr=lr) for g in groups]
    blocks = getattr(getattr(body, "encoder", None), "layer", None) or getattr(body, "layers", None)
    if blocks is None:
        raise LlmlabError("layer-wise lr decay needs a body with encoder.layer or layers blocks")
    n = len(blocks)

    def depth(name: str) -> int:  # 0 for the embeddings, i + 1 for block i, n + 1 above the blocks
        parts = name.split(".")
        for k, part in enumerate(parts[:-1]):
            if part in ("layer", "layers") and parts[k + 1].isdigit():
                return int(parts[k + 1]) + 1
        return 0 if "embed" in name else n + 1

    out = []
    for g in groups:
        by_depth = {}
        for p, name in zip(g["params"], g["names"]):
            params, names = by_depth.setdefault(depth(name), ([], []))
            params.append(p)
            names.append(name)
        for d, (params, names) in sorted(by_depth.items()):
            scale = layer_decay ** max(0, n + 1 - d)
            out.append({"params": params, "names": names, "weight_decay": g["weight_decay"], "lr": lr * scale})
    return out


def batch_backward(clf: TextClassifier, rows: list[list[int]], y: list[int], idx: list[int], pieces: int = 1,
                   label_smoothing: float = 0.0, rdrop: float = 0.0) -> float:
    """Accumulate the gradient of the mean loss over the texts ``idx``, run as ``pieces`` length-sorted
    micro-batches (each weighted by its share of the batch); returns that mean loss."""
    loss = 0.0
    for part in length_pieces(idx, rows, pieces):
        ids, mask = clf.batch([rows[i] for i in part])  # (b, T) with T this piece's longest text
        target = torch.tensor([y[i] for i in part], device=ids.device)  # (b,)
        if rdrop > 0:
            part_loss = rdrop_loss(clf, ids, mask, target, label_smoothing, rdrop)
        else:
            part_loss = F.cross_entropy(clf(ids, mask), target, label_smoothing=label_smoothing)
        (part_loss * len(part) / len(idx)).backward()
        loss += part_loss.item() * len(part) / len(idx)
    return loss


def rdrop_loss(clf: TextClassifier, ids: torch.Tensor, mask: torch.Tensor, target: torch.Tensor,
               label_smoothing: float, weight: float) -> torch.Tensor:
    """R-Drop: the texts run twice in one batch (dropout draws different masks for the two copies);
    mean cross-entropy of both + ``weight`` x the mean of KL(p1 || p2) and KL(p2 || p1)."""
    b = ids.shape[0]
    logits = clf(torch.cat([ids, ids]), torch.cat([mask, mask]))  # (2b, n_labels)
    ce = F.cross_entropy(logits, torch.cat([target, target]), label_smoothing=label_smoothing)
    logp1, logp2 = F.log_softmax(logits[:b], dim=-1), F.log_softmax(logits[b:], dim=-1)  # (b, n_labels) each
    kl = (F.kl_div(logp1, logp2, log_target=True, reduction="batchmean")
          + F.kl_div(logp2, logp1, log_target=True, reduction="batchmean")) / 2
    return ce + weight * kl


def length_pieces(idx: list[int], rows: list[list[int]], pieces: int) -> list[list[int]]:
    """``idx`` as it is (``pieces`` <= 1), or sorted by text length and cut into ``pieces`` parts."""
    if pieces <= 1 or len(idx) < 2:
        return [idx]
    idx = sorted(idx, key=lambda i: len(rows[i]))
    size = math.ceil(len(idx) / pieces)
    return [idx[s:s + size] for s in range(0, len(idx), size)]


def predict(clf: TextClassifier, texts: list[str], batch_size: int = 64,
            progress: bool = False) -> tuple[list[str], list[float]]:
    """(predicted label, its probability) for each text, in order."""
    probs = predict_proba(clf, texts, batch_size, progress)
    best = probs.max(dim=-1)
    return [clf.labels[i] for i in best.indices.tolist()], best.values.tolist()


def predict_proba(clf: TextClassifier, texts: list[str], batch_size: int = 64, progress: bool = False) -> torch.Tensor:
    """Class probabilities (N, len(clf.labels)), in the order of ``texts``."""
    from tqdm import tqdm

    clf.eval()
    rows = [clf.encode(t) for t in texts]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths together
    probs = torch.empty(len(rows), len(clf.labels))
    with torch.no_grad():
        for s in tqdm(range(0, len(order), batch_size), desc="classifying", unit="batch", disable=not progress):
            idx = order[s:s + batch_size]
            ids, mask = clf.batch([rows[i] for i in idx])
            probs[idx] = clf(ids, mask).float().softmax(dim=-1).cpu()
    return probs


# --- files --------------------------------------------------------------------------------------
def save_classifier(clf: TextClassifier, folder: str | Path, base_model: str, frozen: bool) -> Path:
    folder = Path(folder)
    config = {"format": "llmlab-classifier", "kind": clf.kind, "base_model": base_model, "labels": clf.labels,
              "max_len": clf.max_len, "frozen": frozen, "dim": clf.head.in_features}
    atomic_write_bytes(folder / "head.safetensors", save(_plain(clf.head.state_dict())))
    if not frozen:
        atomic_write_bytes(folder / "body.safetensors", save(_plain(clf.body.state_dict())))
    elif (folder / "body.safetensors").exists():
        (folder / "body.safetensors").unlink()  # a stale body from an earlier run would be read back
    atomic_write_text(folder / CONFIG, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return folder


def _plain(state: dict) -> dict:
    return {k: v.detach().float().contiguous().cpu() for k, v in state.items()}


def is_classifier(path: str | Path) -> bool:
    return (Path(path).expanduser() / CONFIG).is_file()


def load_classifier(folder: str | Path) -> TextClassifier:
    """A classifier saved by `save_classifier`: the named base, its trained body weights if any, the head."""
    folder = Path(folder).expanduser()
    if not is_classifier(folder):
        raise LlmlabError(f"{folder}: not a fine-tuned classifier folder (no {CONFIG}); "
                          "make one with `llmlab finetune classify`")
    try:
        config = json.loads(read_text(folder / CONFIG))
        labels, base = config["labels"], config["base_model"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise LlmlabError(f"{folder / CONFIG}: not a classifier config ({e})") from None
    clf = build_classifier(base, labels, config.get("max_len", 128))
    parts = [("head.safetensors", clf.head)] + ([] if config.get("frozen") else [("body.safetensors", clf.body)])
    for name, module in parts:
        try:
            state = load_file(folder / name)
            module.load_state_dict(state)
        except (SafetensorError, OSError) as e:
            raise LlmlabError(f"{folder / name}: cannot read ({e})") from None
        except RuntimeError as e:
            raise LlmlabError(f"{folder / name}: does not fit base '{base}' ({str(e).splitlines()[0]})") from None
    return clf.eval()
