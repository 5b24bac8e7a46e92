"""Autoregressive generation with a KV cache, streamed as text.

The prompt is run through the model once (prefill, filling the KV cache); then each step
feeds only the newest token. Generation ends at the model's end-of-sequence token, at a
stop string, or after ``max_new_tokens``. Text is streamed as it becomes valid UTF-8:
byte-level tokens may end inside a character, so bytes are fed to an incremental decoder,
and text that could be the start of a stop string is held back until it is decided.

Context window: the prompt plus ``max_new_tokens`` must fit the model's context length,
otherwise `ContextWindowError` says by how much (chat drops old turns instead, see chat.py).
Tests: tests/generate/test_generate.py, test_continuations.py; greedy ids vs HF transformers in
tests/weights/test_gguf.py.
"""

import codecs
import math
import numbers
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from llmlab.errors import LlmlabError
from llmlab.generate.sampling import next_token, penalize_repeats


class ContextWindowError(LlmlabError):
    """The prompt and the requested new tokens do not fit the model's context window."""


@dataclass
class GenerationConfig:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None  # same seed, same text
    stop: list[str] = field(default_factory=list)  # generation ends before any of these strings
    repetition_penalty: float = 1.0  # > 1: tokens the answer has used lately are less likely (1: off)
    repetition_window: int | None = 64  # lately: the answer's last this many tokens (None: all of them). The
    # prompt is not penalised (an answer reuses the question's words), nor are special tokens (end of turn)

    def __post_init__(self):
        if self.stop is None or isinstance(self.stop, str):  # none, or one stop string
            self.stop = [] if self.stop is None else [self.stop]
        self.stop = list(self.stop)
        if not all(isinstance(s, str) for s in self.stop):
            raise LlmlabError(f"stop must be a list of strings, not {self.stop!r}")
        for name in ("max_new_tokens", "top_k", "seed", "repetition_window"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)) \
                    or value is None and name == "max_new_tokens":
                raise LlmlabError(f"{name} must be a whole number, not {value!r}")
        for name in ("temperature", "top_p", "repetition_penalty"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)) \
                    or value is None and name != "top_p":
                raise LlmlabError(f"{name} must be a number, not {value!r}")
        if self.max_new_tokens < 1:
            raise LlmlabError(f"max_new_tokens must be at least 1, not {self.max_new_tokens}")
        if not 0 <= self.temperature < math.inf:
            raise LlmlabError(f"temperature must be a number >= 0, not {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise LlmlabError(f"top_k must be at least 1, not {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise LlmlabError(f"top_p must be in (0, 1], not {self.top_p}")
        if not 0 < self.repetition_penalty < math.inf:
            raise LlmlabError(f"repetition_penalty must be a number > 0, not {self.repetition_penalty}")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            raise LlmlabError(f"seed must be in 0..2**64-1, not {self.seed}")
        if self.repetition_window is not None and self.repetition_window < 1:
            raise LlmlabError(f"repetition_window must be at least 1, not {self.repetition_window}")


@dataclass
class Completion:
    prompt_tokens: int
    ids: list[int]  # new tokens only; the end-of-sequence token is not included
    text: str  # new text only, cut before a stop string
    finish_reason: str  # "eos", "stop", "length", or "interrupted" (Ctrl-C while generating)
    prefill_seconds: float
    decode_seconds: float

    @property
    def tokens_per_second(self) -> float:
        return len(self.ids) / self.decode_seconds if self.decode_seconds > 0 else 0.0


def check_context(prompt_tokens: int, max_new_tokens: int, context: int) -> None:
    if prompt_tokens + max_new_tokens > context:
        raise ContextWindowError(
            f"the prompt has {prompt_tokens} tokens; with {max_new_tokens} new tokens that is "
            f"{prompt_tokens + max_new_tokens}, more than the model's context window of {context} "
            f"(shorten the prompt or ask for fewer new tokens)"
        )


class PromptCache:
    """The keys and values of a prompt's beginning, computed once for many prompts that start with
    it (the same instructions and examples before each question): a `Stream` given it reads only
    the rest of its prompt. Streams share its memory, so they run one after another, not interleaved."""

    def __init__(self, model, prefix_ids: list[int], capacity: int):
        if not prefix_ids or capacity <= len(prefix_ids):
            raise LlmlabError(f"a prompt cache needs a prefix and room after it, not {len(prefix_ids)} tokens "
                              f"in {capacity}")
        self.ids, self.capacity = list(prefix_ids), capacity
        with torch.inference_mode():
            self.cache = model.new_cache(1, capacity)
            model(torch.tensor([self.ids]), cache=self.cache, last_only=True)
        self.length = self.cache.length

    @classmethod
    def common(cls, model, prompts: list[list[int]], max_new_tokens: int, least: int = 32) -> "PromptCache | None":
        """The cache of the beginning ``prompts`` all share, when there are several and it is at least
        ``least`` tokens (less saves nothing); each prompt keeps at least one token of its own to read."""
        if len(prompts) < 2:
            return None
        shortest = min(map(len, prompts))
        n = next((i for i, ids in enumerate(zip(*prompts)) if len(set(ids)) > 1), shortest)
        n = min(n, shortest - 1)
        return cls(model, prompts[0][:n], max(map(len, prompts)) + max_new_tokens) if n >= least else None

    def fits(self, prompt_ids: list[int], max_new_tokens: int) -> bool:
        """Whether ``prompt_ids`` start with the prefix, go on after it, and fit with ``max_new_tokens``."""
        n = len(self.ids)
        return len(prompt_ids) > n and prompt_ids[:n] == self.ids and len(prompt_ids) + max_new_tokens <= \
            self.capacity


class Stream:
    """Iterate for text pieces as they are generated; ``completion`` is set when done."""

    def __init__(self, model, tokenizer, prompt_ids: list[int], config: GenerationConfig,
                 prefix: PromptCache | None = None):
        if not prompt_ids:
            raise LlmlabError("empty prompt: give the model at least one token")
        vocab = model.config.vocab_size
        if not all(isinstance(i, numbers.Integral) for i in prompt_ids) or not 0 <= min(prompt_ids) <= \
                max(prompt_ids) < vocab:
            bad = next(i for i in prompt_ids if not isinstance(i, numbers.Integral) or not 0 <= i < vocab)
            raise LlmlabError(f"prompt id {bad!r} is not a token of the model (0..{vocab - 1})")
        check_context(len(prompt_ids), config.max_new_tokens, model.config.max_seq_len)
        self.model, self.tokenizer, self.prompt_ids, self.config = model, tokenizer, prompt_ids, config
        self.prefix = prefix if prefix is not None and prefix.fits(prompt_ids, config.max_new_tokens) else None
        eos = getattr(tokenizer, "eos_token", None)
        self.eos_ids = {tokenizer.special_tokens[eos]} if eos in tokenizer.special_tokens else set()
        self.special_ids = set(getattr(tokenizer, "special_tokens", {}).values())  # never penalised as repeats
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        cfg, model = self.config, self.model
        generator = torch.Generator().manual_seed(cfg.seed) if cfg.seed is not None else None
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        ids: list[int] = []
        text, held = "", ""  # text emitted so far; text held back as a possible stop-string start
        finish = "length"
        start, prefill = time.perf_counter(), None
        try:
            with torch.inference_mode():
                rest = self.prompt_ids
                if self.prefix is not None:  # the prefix's keys and values are in place: read the rest only
                    cache = self.prefix.cache
                    cache.length = self.prefix.length
                    rest = self.prompt_ids[len(self.prefix.ids):]
                else:
                    cache = model.new_cache(1, len(self.prompt_ids) + cfg.max_new_tokens)
                logits = model(torch.tensor([rest]), cache=cache, last_only=True)[:, -1]
                prefill = time.perf_counter() - start
                start = time.perf_counter()
                for step in range(cfg.max_new_tokens):
                    if cfg.repetition_penalty != 1.0:
                        recent = ids[-cfg.repetition_window:] if cfg.repetition_window else ids
                        recent = [t for t in recent if t not in self.special_ids]
                        logits = penalize_repeats(logits, torch.tensor([recent], dtype=torch.long),
                                                  cfg.repetition_penalty)
                    token = next_token(logits, cfg.temperature, cfg.top_k, cfg.top_p, generator)  # (1,)
                    t = int(token)
                    if t in self.eos_ids:
                        finish = "eos"
                        break
                    ids.append(t)
                    held += utf8.decode(self.tokenizer.token_bytes(t))
                    emit, held, stopped = _split_stop(held, cfg.stop)
                    text += emit
                    if emit:
                        yield emit
                    if stopped:
                        finish = "stop"
                        break
                    if step + 1 < cfg.max_new_tokens:
                        logits = model(token.view(1, 1), cache=cache)[:, -1]
            if finish != "stop":
                held += utf8.decode(b"", final=True)
                if held:
                    text += held
                    yield held
        except KeyboardInterrupt:  # what was shown so far is the answer; the caller decides whether to go on
            seconds = time.perf_counter() - start
            self.completion = Completion(len(self.prompt_ids), ids, text, "interrupted",
                                         seconds if prefill is None else prefill, 0.0 if prefill is None else seconds)
            raise
        self.completion = Completion(len(self.prompt_ids), ids, text, finish, prefill, time.perf_counter() - start)


def _split_stop(held: str, stops: list[str]) -> tuple[str, str, bool]:
    """(text safe to emit, text to keep holding, whether a stop string was found)."""
    if not stops:
        return held, "", False
    hits = [held.find(s) for s in stops if s and s in held]
    if hits:
        return held[: min(hits)], "", True
    keep = 0  # longest tail of `held` that is a proper prefix of some stop string
    for s in stops:
        for k in range(min(len(s) - 1, len(held)), keep, -1):
            if held.endswith(s[:k]):
                keep = k
                break
    return held[: len(held) - keep], held[len(held) - keep:], False


def stream(model, tokenizer, prompt: str | list[int], config: GenerationConfig | None = None,
           prefix: PromptCache | None = None) -> Stream:
    """A streaming generation; ``prompt`` is text (encoded with special tokens) or ids (a list, a numpy
    array or a 1-D tensor). ``prefix``: a `PromptCache` of the prompt's beginning (ignored when the
    prompt does not start with it)."""
    ids = tokenizer.encode(prompt) if isinstance(prompt, str) else _id_sequence(prompt, "the prompt", "a str or ")
    return Stream(model, tokenizer, ids, config or GenerationConfig(), prefix)


def complete(model, tokenizer, prompt: str | list[int], config: GenerationConfig | None = None,
             prefix: PromptCache | None = None) -> Completion:
    """Generate to the end and return the whole completion."""
    s = stream(model, tokenizer, prompt, config, prefix)
    for _ in s:
        pass
    return s.completion


def continuation_logprobs(model, prompt_ids: list[int], options: list[list[int]],
                          prefix: PromptCache | None = None, budget: int = 256) -> torch.Tensor:
    """log P(option | prompt) for each option (token ids), as a (len(options),) tensor: how likely the
    model finds each continuation, with no text generated (scoring labels, multiple choice).

    One pass reads the prompt (after ``prefix``'s tokens when it starts with them) and, laid side
    by side after it, the options: each option's token sees the prompt and its own option's tokens
    before it (a block-diagonal causal mask), at the position it would have right after the
    prompt. Options past about ``budget`` tokens together take more passes over the cached prompt.
    For int8 / int4 models, ``float_weights(model, every_call=True)`` around the calls makes the
    scores the float32 ones (the few-row kernels round logits to bfloat16).
    """
    prompt_ids = _id_sequence(prompt_ids, "the prompt")
    options = [_id_sequence(o, "an option") for o in options]
    if not options or not all(options):
        raise LlmlabError("continuation_logprobs needs at least one option, each of at least one token")
    vocab = model.config.vocab_size
    if not prompt_ids or not all(isinstance(t, numbers.Integral) and 0 <= t < vocab
                                 for ids in (prompt_ids, *options) for t in ids):
        raise LlmlabError(f"the prompt and options must be token ids of the model (0..{vocab - 1}), the prompt "
                          "at least one")
    groups, room = _passes(options, budget)
    with torch.inference_mode():
        rest = prompt_ids
        if prefix is not None and prefix.fits(prompt_ids, room):  # the prefix's keys and values are in place
            cache = prefix.cache
            cache.length = prefix.length
            rest = prompt_ids[len(prefix.ids):]
        else:
            cache = model.new_cache(1, len(prompt_ids) + room)
        scores = torch.zeros(len(options))
        for n, g in enumerate(groups):
            first, tokens = _read_side_by_side(model, cache, rest if n == 0 else [], [options[i] for i in g])
            if first is not None:
                scores += first[torch.tensor([o[0] for o in options])]
            scores.index_add_(0, torch.tensor(g, dtype=torch.long)[tokens[0]], tokens[1])
    return scores


def continuation_room(options: list[list[int]], budget: int = 256) -> int:
    """The cache positions `continuation_logprobs` needs after a prompt for ``options`` (what a
    `PromptCache` shared by its calls must leave free)."""
    return _passes([list(o) for o in options], budget)[1]


def _passes(options: list[list[int]], budget: int) -> tuple[list[list[int]], int]:
    """The options read in each pass (indices), about ``budget`` tokens together, and the most tokens
    one pass reads. An option's last token is predicted, never read, so one of one token is scored
    from the prompt's pass alone."""
    reads = [len(o) - 1 for o in options]
    groups: list[list[int]] = [[]]
    for i in (i for i, n in enumerate(reads) if n):
        if groups[-1] and sum(reads[j] for j in groups[-1]) + reads[i] > budget:
            groups.append([])
        groups[-1].append(i)
    return groups, max(sum(reads[i] for i in g) for g in groups)


def _id_sequence(ids, what: str, or_else: str = "") -> list:
    """A list, a tuple, a 1-D numpy array or tensor of ids as a list of Python ints (numpy / torch
    give Python ints through tolist)."""
    if isinstance(ids, (str, bytes, bytearray)) or not hasattr(ids, "__iter__") or getattr(ids, "ndim", 1) != 1:
        raise LlmlabError(f"{what} must be {or_else}a sequence of token ids, not {type(ids).__name__}"
                          + (" (decode bytes to text first)" if isinstance(ids, (bytes, bytearray)) else ""))
    return ids.tolist() if hasattr(ids, "tolist") else list(ids)


def _read_side_by_side(model, cache, rest: list[int], options: list[list[int]]):
    """Read ``rest`` (the prompt's tokens not cached yet, maybe none) and after it ``options`` but their
    last tokens, side by side. Returns the log-probabilities after the prompt (vocab,), None when
    ``rest`` is empty, and (option index, log-probability) of each option token after the first."""
    past, R = cache.length, len(rest)
    lengths = torch.tensor([len(o) - 1 for o in options], dtype=torch.long)
    owner = torch.repeat_interleave(torch.arange(len(options)), lengths)  # (n,) option of each token read
    offset = torch.arange(len(owner)) - (lengths.cumsum(0) - lengths)[owner]  # (n,) place within its option
    T = R + len(owner)
    sees = torch.ones(T, past + T, dtype=torch.bool).tril(diagonal=past)  # causal; then the options' blocks:
    sees[R:, past + R:] = (owner[:, None] == owner[None, :]) & (offset[:, None] >= offset[None, :])
    sees[R:, :past + R] = True  # every option token sees the whole prompt
    positions = torch.cat([torch.arange(past, past + R), past + R + offset])  # (T,)
    ids = torch.tensor(rest + [t for o in options for t in o[:-1]], dtype=torch.long)
    rows = torch.arange(R - 1 if R else 0, T)  # the prompt's last place (when read now) and every option token
    logprobs = model(ids[None], attention_mask=sees[None], cache=cache, positions=positions[None],
                     rows=rows)[0].log_softmax(-1)  # (len(rows), vocab)
    cache.length = past + R  # the options' keys and values are not kept
    targets = torch.tensor([t for o in options for t in o[1:]], dtype=torch.long)
    tokens = logprobs[1 if R else 0:].gather(1, targets[:, None])[:, 0]  # (n,)
    return (logprobs[0] if R else None), (owner, tokens)
