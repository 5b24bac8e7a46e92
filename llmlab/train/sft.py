"""Supervised fine-tuning (SFT) of a decoder on instructions or chats, in full or with LoRA.

Data: a JSON list or JSON Lines file of records, each either Alpaca-style
(``instruction``, optional ``input``, ``output``; Taori et al. 2023) or a chat
(``messages``: a list of ``{"role": "system"|"user"|"assistant", "content": ...}``).
Every record is rendered through the model's own chat template (`ChatTemplate`), so the
model is trained on exactly the format it is prompted with later.

Loss masking (as in InstructGPT-style SFT, Ouyang et al. 2022): the labels are -100 (ignored)
everywhere except the assistant's answers and their end-of-turn token. The answer spans are
found by rendering prefixes of the conversation: ``render(messages[:i], add_generation_prompt=True)``
ends where assistant turn i starts, ``render(messages[:i+1])`` ends after it. The pieces between
these cuts are tokenized one by one, exactly as a prompt is tokenized at inference time and the
answer then generated after it. Records longer than the context are an error naming the record,
unless ``truncate=True`` (cut at the context, counted and reported).

Training: AdamW over the trainable parameters (no decay on norms and biases), linear warm-up
then cosine decay, gradient clipping, gradient accumulation, validation loss at intervals and
at the end, a progress bar with tokens/s (groups and schedule from llmlab.train.optim). LoRA
(llmlab.nn.lora) freezes the body and trains only the adapters and is saved as an adapter folder;
full fine-tuning trains every weight and is saved as our checkpoint (llmlab.weights.checkpoint).
`save_decoder` exports a Llama-family model as an HF folder instead.

Tests: tests/train/test_sft.py (SmolLM2's template: exactly the assistant text is trained on;
bad records; over-long records; a loss that falls on a tiny model; save and reload).
"""

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.errors import LlmlabError
from llmlab.fileio import atomic_write_bytes, atomic_write_text, read_text

IGNORE = -100  # label of a token the loss does not see (torch's cross_entropy ignore_index)
ROLES = ("system", "user", "assistant")


# --- data -------------------------------------------------------------------------------------
def _json_line(line: str, path: Path, number: int):
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise LlmlabError(f"{path}: line {number} is not valid JSON ({e.msg}, column {e.colno}); "
                          "a JSON Lines file holds one record per line") from None


def read_conversations(path: str | Path) -> list[list[dict[str, str]]]:
    """The records of a JSON / JSONL file as chats (lists of role/content messages)."""
    p = Path(path)
    text = read_text(p)
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise LlmlabError(f"{p}: not valid JSON ({e.msg}, line {e.lineno})") from None
    else:
        records = [_json_line(line, p, n) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not records:
        raise LlmlabError(f"{p}: no records")
    return [record_messages(r, f"{p}: record {i}") for i, r in enumerate(records, start=1)]


def record_messages(record, where: str) -> list[dict[str, str]]:
    """One record as a chat: Alpaca fields become one user turn and one assistant turn."""
    if not isinstance(record, dict):
        raise LlmlabError(f"{where}: expected an object, got {type(record).__name__}")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise LlmlabError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
        for k, m in enumerate(messages, start=1):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise LlmlabError(f"{where}: message {k} needs a role ({', '.join(ROLES)}) and a text content")
        if not any(m["role"] == "assistant" for m in messages):
            raise LlmlabError(f"{where}: no assistant message, so nothing to learn from")
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    if "instruction" in record and "output" in record:
        fields = [record["instruction"], record.get("input") or "", record["output"]]
        if not all(isinstance(f, str) for f in fields):
            raise LlmlabError(f"{where}: instruction, input and output must be text")
        user = fields[0] + (f"\n\n{fields[1]}" if fields[1].strip() else "")
        return [{"role": "user", "content": user}, {"role": "assistant", "content": fields[2]}]
    keys = ", ".join(map(repr, list(record)[:8])) or "none"
    raise LlmlabError(f"{where}: expected 'instruction'/'output' fields or a 'messages' list (found keys: {keys})")


def assistant_spans(messages: list[dict[str, str]], template, end_of_turn: str | None) -> tuple[str, list]:
    """(rendered text, [(start, end) character spans of each assistant answer, end-of-turn included])."""
    full = template.render(messages, add_generation_prompt=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = template.render(messages[:i], add_generation_prompt=True)  # ends where the answer starts
        through = template.render(messages[: i + 1], add_generation_prompt=False)  # ends after the turn
        if not (full.startswith(before) and full.startswith(through) and len(before) <= len(through)):
            raise LlmlabError("the chat template does not render conversations turn by turn (a prefix of the "
                              "conversation is not a prefix of its rendering); cannot find the answers")
        end = len(through)
        if end_of_turn:  # train up to the end-of-turn token, not on the separator the template adds after it
            k = full.rfind(end_of_turn, len(before), end)
            if k >= 0:
                end = k + len(end_of_turn)
        spans.append((len(before), end))
    return full, spans


def encode_chat(messages, tokenizer, template) -> tuple[list[int], list[int]]:
    """(ids, labels) of one chat: labels copy the ids on assistant answers, -100 elsewhere.
    The text after the last answer (a newline) is left out: nothing there is trained."""
    full, spans = assistant_spans(messages, template, getattr(tokenizer, "eos_token", None))
    ids, labels, pos = [], [], 0
    for start, end in spans:
        for text, trained in ((full[pos:start], False), (full[start:end], True)):
            if not text:
                continue
            piece = tokenizer.encode(text) if not ids else _encode_more(tokenizer, text)
            ids += piece
            labels += piece if trained else [IGNORE] * len(piece)
        pos = end
    return ids, labels


def _encode_more(tokenizer, text: str) -> list[int]:
    """Ids of a piece that continues a sequence: no second BOS."""
    return tokenizer.encode(text, add_bos=False) if getattr(tokenizer, "add_bos", False) else tokenizer.encode(text)


@dataclass
class Example:
    ids: list[int]
    labels: list[int]
    record: int  # 1-based position in the data file

    @property
    def trained_tokens(self) -> int:
        return sum(t != IGNORE for t in self.labels)


def build_examples(conversations, tokenizer, template, max_len: int, truncate: bool = False,
                   source: str = "data") -> tuple[list[Example], dict]:
    """Tokenized examples, and a report {records, truncated, dropped} of what the length policy did.

    A record longer than ``max_len`` tokens is an error naming it, unless ``truncate``: then it
    is cut at ``max_len`` (and dropped if no answer token is left)."""
    examples, truncated, dropped = [], 0, 0
    for i, messages in enumerate(conversations, start=1):
        ids, labels = encode_chat(messages, tokenizer, template)
        if len(ids) > max_len:
            if not truncate:
                raise LlmlabError(f"{source}: record {i} is {len(ids)} tokens, longer than the limit of {max_len} "
                                  "(shorten or remove it, or pass --truncate to cut such records)")
            ids, labels, truncated = ids[:max_len], labels[:max_len], truncated + 1
        example = Example(ids, labels, i)
        if example.trained_tokens == 0:
            dropped += 1
            continue
        examples.append(example)
    if not examples:
        raise LlmlabError(f"{source}: no record has an answer left to train on")
    return examples, {"records": len(conversations), "truncated": truncated, "dropped": dropped}


def split(examples: list, val_fraction: float, seed: int = 0) -> tuple[list, list]:
    """(train, validation): a seeded shuffle, then the last ``val_fraction`` held out."""
    if not 0 <= val_fraction < 1:
        raise LlmlabError(f"the validation fraction must be in [0, 1), not {val_fraction}")
    order = list(examples)
    random.Random(seed).shuffle(order)
    n_val = round(len(order) * val_fraction)
    if val_fraction > 0 and len(order) >= 2:
        n_val = max(1, n_val)
    return order[: len(order) - n_val], order[len(order) - n_val:]


def collate(batch: list[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and labels (B, T). No attention mask is needed: with causal attention a
    real token never sees the padding after it, and padded positions carry no label."""
    T = max(len(e.ids) for e in batch)
    ids = torch.tensor([e.ids + [pad_id] * (T - len(e.ids)) for e in batch])  # (B, T)
    labels = torch.tensor([e.labels + [IGNORE] * (T - len(e.labels)) for e in batch])  # (B, T)
    return ids, labels


def lm_loss_sum(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(summed next-token cross-entropy over the labelled tokens, their number)."""
    logits = model(ids)  # (B, T, V)
    targets = labels[:, 1:]  # (B, T-1): token t+1 is predicted at position t
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE,
                           reduction="sum")
    return loss, int((targets != IGNORE).sum())


# --- optimiser and schedule (llmlab.train.optim) -----------------------------------------------
def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """`llmlab.train.optim.param_groups` (decay on linear weights only), refusing a model with
    nothing to train (e.g. LoRA targets that matched nothing trainable)."""
    from llmlab.train.optim import param_groups as groups

    out = [g for g in groups(model, weight_decay) if g["params"]]
    if not out:
        raise LlmlabError("the model has no trainable parameters")
    return out


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float = 0.1) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup`` steps, then cosine down to ``min_ratio``
    at ``total`` (`llmlab.train.optim.Schedule` with a peak of 1)."""
    from llmlab.train.optim import Schedule

    return Schedule(lr=1.0, min_lr=min_ratio, warmup=warmup, decay_steps=total).lr_at(step)


# --- the loop -----------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    epochs: float = 1.0
    lr: float = 2e-4  # LoRA's usual rate; full fine-tuning wants ~1e-5 to 5e-5
    batch_size: int = 8
    grad_accum: int = 1  # micro-batches per optimiser step
    max_steps: int | None = None  # stop after this many optimiser steps
    warmup: float = 0.05  # fraction of the steps spent warming up
    weight_decay: float = 0.0
    clip: float = 1.0  # gradient-norm clipping
    eval_every: int | None = None  # optimiser steps between validation losses (None: 4 per run)
    seed: int = 0

    def __post_init__(self):
        if self.batch_size < 1 or self.grad_accum < 1:
            raise LlmlabError("batch size and gradient accumulation must be at least 1")
        if self.lr <= 0 or self.epochs <= 0:
            raise LlmlabError("the learning rate and the number of epochs must be positive")


@dataclass
class History:
    steps: int = 0
    tokens: int = 0  # labelled tokens trained on
    seconds: float = 0.0
    train_loss: list = field(default_factory=list)  # (step, loss)
    val_loss: list = field(default_factory=list)  # (step, loss)


def evaluate(model: nn.Module, examples: list[Example], pad_id: int, batch_size: int = 8) -> float:
    """Mean cross-entropy per labelled token (nats)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    ordered = sorted(examples, key=lambda e: len(e.ids))  # similar lengths together: little padding
    with torch.no_grad():
        for s in range(0, len(ordered), batch_size):
            ids, labels = collate(ordered[s:s + batch_size], pad_id)
            loss, n = lm_loss_sum(model, ids.to(device), labels.to(device))
            total, count = total + float(loss), count + n
    model.train(was_training)
    return total / max(1, count)


def fit(model: nn.Module, train: list[Example], val: list[Example], cfg: TrainConfig, pad_id: int,
        progress: bool = True, log=print) -> History:
    """Train ``model``'s trainable parameters on ``train``; validation loss on ``val`` now and then."""
    from tqdm import tqdm

    device = next(model.parameters()).device
    per_step = cfg.batch_size * cfg.grad_accum
    steps_per_epoch = max(1, math.ceil(len(train) / per_step))
    total = max(1, math.ceil(steps_per_epoch * cfg.epochs))
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    warmup = max(1, round(cfg.warmup * total)) if cfg.warmup > 0 else 0
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, warmup))
    eval_every = cfg.eval_every or max(1, total // 4)
    trainable = [p for p in model.parameters() if p.requires_grad]
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    history = History()
    if val:
        history.val_loss.append((0, evaluate(model, val, pad_id, cfg.batch_size)))
        log(f"step 0: validation loss {history.val_loss[-1][1]:.4f}")

    def batches():
        while True:  # epochs of shuffled micro-batches
            order = list(train)
            rng.shuffle(order)
            for s in range(0, len(order), cfg.batch_size):
                yield order[s:s + cfg.batch_size]

    stream = batches()
    model.train()
    start = time.perf_counter()
    bar = tqdm(range(total), desc="fine-tune", unit="step", disable=not progress)
    for step in bar:
        micro = [collate(next(stream), pad_id) for _ in range(cfg.grad_accum)]
        n_tokens = sum(int((lab[:, 1:] != IGNORE).sum()) for _, lab in micro)
        step_loss = 0.0
        for ids, labels in micro:
            loss, _ = lm_loss_sum(model, ids.to(device), labels.to(device))
            (loss / max(1, n_tokens)).backward()  # the step's mean over all its labelled tokens
            step_loss += loss.item()
        torch.nn.utils.clip_grad_norm_(trainable, cfg.clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        history.steps, history.tokens = step + 1, history.tokens + n_tokens
        history.train_loss.append((step + 1, step_loss / max(1, n_tokens)))
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{history.train_loss[-1][1]:.3f}", tok_s=f"{history.tokens / elapsed:.0f}",
                        lr=f"{schedule.get_last_lr()[0]:.1e}")
        if val and ((step + 1) % eval_every == 0 or step + 1 == total):
            history.val_loss.append((step + 1, evaluate(model, val, pad_id, cfg.batch_size)))
            log(f"step {step + 1}: validation loss {history.val_loss[-1][1]:.4f}")
    bar.close()
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


# --- saving a fully fine-tuned decoder ---------------------------------------------------------
def save_decoder(bundle, folder: str | Path) -> Path:
    """Write a fine-tuned Llama-family decoder as an HF folder that `load_decoder(PATH)` reads back:
    config.json, model.safetensors, tokenizer.json and tokenizer_config.json (chat template, eos)."""
    from safetensors.torch import save

    cfg = bundle.config
    if cfg.family != "llama":
        raise LlmlabError("saving a fully fine-tuned model is implemented for the Llama family only")
    folder = Path(folder)
    state = {f"model.{k}": v.detach().float().contiguous().cpu() for k, v in bundle.model.state_dict().items()
             if not (cfg.tie_embeddings and k == "lm_head.weight")}  # a tied head is the embedding
    if "model.lm_head.weight" in state:
        state["lm_head.weight"] = state.pop("model.lm_head.weight")
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": cfg.vocab_size,
              "hidden_size": cfg.dim, "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
              "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.head_dim, "intermediate_size": cfg.ffn_dim,
              "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta,
              "tie_word_embeddings": cfg.tie_embeddings, "torch_dtype": "float32"}
    tok = bundle.tokenizer
    tok_config = {"chat_template": bundle.chat_template, "eos_token": tok.eos_token, "bos_token": tok.bos_token}
    atomic_write_bytes(folder / "model.safetensors", save(state))
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2) + "\n")
    atomic_write_text(folder / "tokenizer_config.json", json.dumps(tok_config, indent=2, ensure_ascii=False) + "\n")
    tok.save(folder)
    return folder


# --- one call for the CLI ----------------------------------------------------------------------
@dataclass
class SFTResult:
    out: str
    kind: str  # "lora", "merged" or "full"
    trainable: int
    total: int
    train_examples: int
    val_examples: int
    data: dict  # records / truncated / dropped
    history: History


def run_sft(data: str | Path, model: str = "smollm2", out: str | Path = "sft-out", lora: bool = False,
            rank: int = 8, alpha: float = 16.0, dropout: float = 0.05, targets=("q_proj", "v_proj"),
            merge: bool = False, val_fraction: float = 0.1, max_len: int | None = None, truncate: bool = False,
            cfg: TrainConfig | None = None, progress: bool = True, log=print) -> SFTResult:
    """Read ``data``, fine-tune ``model`` (fully, or LoRA adapters), save into ``out``."""
    from llmlab.generate import ChatTemplate
    from llmlab.generate.chat import PLAIN_TEMPLATE
    from llmlab.nn.lora import apply_lora, merge_lora, save_adapter
    from llmlab.weights.registry import load_decoder

    cfg = cfg or TrainConfig()
    conversations = read_conversations(data)
    bundle = load_decoder(model, precision="fp32")
    tok = bundle.tokenizer
    chat_template = bundle.chat_template
    if not chat_template:
        chat_template = PLAIN_TEMPLATE
        log(f"{model} has no chat template: conversations are written as plain turns "
            "(ROLE:, the text, a blank line), and the result keeps that template")
    template = ChatTemplate(chat_template, tok.bos_token or "", tok.eos_token or "")
    limit = min(max_len or bundle.config.max_seq_len, bundle.config.max_seq_len)
    examples, report = build_examples(conversations, tok, template, limit, truncate, str(data))
    if report["truncated"] or report["dropped"]:
        log(f"length policy: {report['truncated']} record(s) cut at {limit} tokens, "
            f"{report['dropped']} dropped (no answer token left)")
    train, val = split(examples, val_fraction, cfg.seed)
    net = bundle.model
    if lora:
        wrapped = apply_lora(net, targets, rank, alpha, dropout)
        log(f"LoRA r={rank} alpha={alpha} on {len(wrapped)} layers ({', '.join(targets)})")
    else:
        for p in net.parameters():
            p.requires_grad_(True)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = sum(p.numel() for p in net.parameters())
    log(f"{len(train)} training / {len(val)} validation examples; {trainable:,} of {total:,} parameters trained")
    pad = tok.special_tokens.get(tok.eos_token, 0) if tok.eos_token else 0
    history = fit(net, train, val, cfg, pad, progress, log)
    out = Path(out)
    base = str(Path(model).resolve()) if Path(model).exists() else str(model)
    if lora and not merge:
        save_adapter(net, out, base_model=base)
        kind = "lora"
    else:
        from llmlab.weights.checkpoint import save_checkpoint

        if lora:
            merge_lora(net)
        save_checkpoint(out, history.steps, net, tok, chat_template=chat_template)  # out/step-N, out/latest
        kind = "merged" if lora else "full"
    log_doc = {"base_model": base, "kind": kind, "config": asdict(cfg), "data": report,
               "train_examples": len(train), "val_examples": len(val), "history": asdict(history)}
    atomic_write_text(out / "training.json", json.dumps(log_doc, indent=2) + "\n")
    return SFTResult(str(out), kind, trainable, total, len(train), len(val), report, history)
