"""Questions answered from the user's own files, with numbered citations (retrieval + generation).

`ask` takes the top passages of a question from a search `Index` (llmlab.apps.search),
numbers them [1], [2], ... in one user message rendered with the model's own chat template,
and lets SmolLM2 answer greedily. The answer is then checked, not trusted:

- **Nothing relevant, no model call.** When the best passage's MiniLM cosine similarity to the
  question is below ``RELEVANCE`` (0.30) the answer is ``NOT_FOUND``. Calibrated on SciFact with
  `bench/inspect.py --only calibrate` (2-core CPU): 0.30 keeps 98.5% of answerable claims and
  rejects 100% of off-topic (banking77) questions, but only 3% of in-domain claims whose
  abstract is absent: similarity finds the topic, not the answer; those reach the model,
  which is told to say when the passages lack the answer.
- **Citations are parsed.** ``[n]`` / ``[n, m]`` markers in the answer are read; numbers that
  name no passage are dropped (and listed in ``Answer.invalid``).
- **Or attributed, and said so.** SmolLM2-135M rarely writes a marker however it is asked. An
  answer without one gets its citations by similarity: each sentence of the answer cites the
  passage most similar to it (MiniLM cosine) when that similarity is at least ``ATTRIBUTION``
  (0.5); ``Answer.attributed`` is then True and the CLI prints "matched by similarity", so a
  reader never mistakes a matched source for one the model named.
- **The prompt stays small** (``PROMPT_TOKENS`` = 1,200 tokens, for CPU speed; SmolLM2's window is
  8,192). Policy: passages keep their rank order; each may use an equal share of the tokens the
  template, instruction and question leave, and what a short passage leaves over goes to the
  next ones. A longer passage is cut at a token boundary and marked with "…" (``Source.trimmed``).
  Special-token strings (``<|im_end|>`` ...) inside passages are removed, so a document cannot
  end the user's turn.
- **Quotes are checked.** Words the answer puts in double quotes (three or more) that no passage
  holds are listed in ``Answer.unquoted`` and flagged: a 135M model invents quotations.
- The answer is the model's first paragraph (generation stops at a blank line; SmolLM2-135M
  tends to recite the passages after answering), decoded greedily with the repetition penalty
  `llmlab chat` uses (``ANSWER_REPETITION_PENALTY`` = 1.1 on the last 64 tokens): of 98 SciFact
  claims answered over their abstracts, answers repeating a 4-word phrase went 7 -> 2 and
  answers running to the token limit 3 -> 0, with as many citing a passage (79).

`grounded_message` and `cited` are shared with `llmlab.apps.inspect` (questions on one
document); `retrieve`, `source_message` and `cited` with `llmlab chat --index`, which retrieves a
follow-up that leans on the previous question ("and when was it built?") with both
(`search_query`).
Tests: tests/apps/test_ask.py.
"""

import math
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.plain import plain, rounded

ATTRIBUTION = 0.5  # MiniLM cosine of an answer sentence to a passage for a matched citation
RELEVANCE = 0.30  # MiniLM cosine of the best passage below which nothing counts as found
PROMPT_TOKENS = 1200  # whole rendered prompt, template included
MIN_PASSAGE_TOKENS = 32  # a share smaller than this means the question itself is too long
NOT_FOUND = "not found in the indexed documents"
ASK_INSTRUCTION = "Using only these passages, answer in one sentence and cite the passage number like [1]."
STOP = ["\n\n"]  # the answer is the first paragraph
ANSWER_REPETITION_PENALTY = 1.1
# A chat message that points back ("and ...", "what about ...", a pronoun) or is very short is a
# follow-up: on its own it names nothing to search for. English wording, and Chinese / Japanese:
# a leading 那 / 还有 / 另外, a pronoun (它, 他们, 这个, それ ...), or a closing 呢 ("what about ...?").
FOLLOW_UP = re.compile(r"^\W*(and|but|also|so|what about|how about)\b|\b(it|its|they|them|their|theirs|he|she|him|"
                       r"her|his|this|that|these|those|there|then)\b"
                       r"|^\W*(那|还有|另外|而且)|它|他们|她们|这个|那个|这些|那些|这里|那里|呢\W*$|それ|その|そこ|彼",
                       re.IGNORECASE)
CJK_CHARS_PER_WORD = 1.5  # Chinese words average about one and a half characters
QUERY_WORDS = 60  # a chain of follow-ups keeps at most this many words of earlier questions


@dataclass
class Source:
    n: int  # the number the prompt gives the passage: [n]
    path: str
    chunk: int
    score: float  # the search mode's score (hybrid: reciprocal-rank fusion; dense: cosine; bm25: BM25)
    text: str  # as shown to the model
    trimmed: bool = False  # cut to fit the prompt
    also: list[dict] = field(default_factory=list)  # {"path", "chunk"} of the same text in other places

    def to_dict(self) -> dict:
        """The passage as plain JSON values."""
        return plain(asdict(self))


@dataclass
class Answer:
    question: str
    answer: str
    citations: list[int]  # valid [n] the answer cites, in order of first mention
    sources: list[Source]  # the passages the model was given (none when nothing was found)
    found: bool = True  # False: no passage was relevant enough, the model was not asked
    relevance: float = 0.0  # best passage's cosine similarity to the question
    invalid: list[int] = field(default_factory=list)  # [n] the answer cites that name no passage
    prompt_tokens: int = 0
    finish_reason: str | None = None  # "eos", "stop" or "length"; None without a model call
    attributed: bool = False  # True: the model cited nothing; `citations` were matched by similarity
    unquoted: list[str] = field(default_factory=list)  # words the answer puts in quotes that no source holds

    def to_dict(self) -> dict:
        """The answer as plain JSON values (what `llmlab ask --format json` prints)."""
        return plain({"question": self.question, "answer": self.answer, "found": self.found,
                      "relevance": rounded(self.relevance), "citations": self.citations,
                      "citations_attributed": self.attributed, "invalid_citations": self.invalid,
                      "unsupported_quotes": self.unquoted, "prompt_tokens": self.prompt_tokens,
                      "finish_reason": self.finish_reason, "sources": [s.to_dict() for s in self.sources]})


def ask(question: str, index, k: int = 3, mode: str = "hybrid", decoder=None, max_new_tokens: int = 160,
        threshold: float = RELEVANCE, on_text: Callable[[str], None] | None = None) -> Answer:
    """Answer ``question`` from an `Index` (or its folder); ``on_text`` receives the answer as it streams.

    ``decoder``: a decoder bundle, a function that loads one (called only when the model is
    needed), or None for SmolLM2-135M-Instruct (int4)."""
    from llmlab.apps.search import Index

    if not isinstance(question, str):
        raise LlmlabError(f"the question must be a str, not {type(question).__name__}")
    if not isinstance(index, (Index, str, os.PathLike)):
        raise LlmlabError(f"index must be an Index or its folder, not {type(index).__name__}")
    if not isinstance(index, Index):
        index = Index(Path(index))
    if k < 1:
        raise LlmlabError(f"k must be at least 1, not {k}")
    sources, relevance = retrieve(index, question, k, mode)
    if relevance < threshold:
        return Answer(question, NOT_FOUND, [], [], found=False, relevance=relevance)
    decoder = load_chat_model(decoder)
    template = chat_template(decoder)
    content = source_message(question, sources, decoder.tokenizer, template)
    ids = decoder.tokenizer.encode(template.render([{"role": "user", "content": content}]))
    completion = generate(decoder, ids, max_new_tokens, on_text)
    answer = completion.text.strip()
    valid, invalid, attributed = citations(answer, sources, index.encoder())
    return Answer(question, answer, valid, sources, True, relevance, invalid, len(ids), completion.finish_reason,
                  attributed, unsupported_quotes(answer, [s.text for s in sources]))


_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”")


def unsupported_quotes(answer: str, passages: list[str]) -> list[str]:
    """The quotations in ``answer`` (three words or more, in straight or curly double quotes) that
    none of ``passages`` holds, whitespace, case and punctuation aside: a quote the model made up."""
    def norm(text: str) -> str:
        return " ".join(re.findall(r"\w+", text.lower()))

    held = [norm(p) for p in passages]
    found = [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(answer)]
    return [q.strip() for q, words in ((q, norm(q)) for q in found)
            if len(words.split()) >= 3 and not any(words in h for h in held)]


def retrieve(index, question: str, k: int = 3, mode: str = "hybrid") -> tuple[list[Source], float]:
    """The top ``k`` passages as numbered sources, and the best passage's cosine similarity."""
    hits = index.search(question, k=k, mode=mode)
    best = hits if mode == "dense" else index.search(question, k=1, mode="dense")
    relevance = best[0].score if best else 0.0
    return [Source(n, h.path, h.chunk, h.score, h.text, also=h.also) for n, h in enumerate(hits, start=1)], relevance


def search_query(message: str, previous: str | None = None) -> str:
    """What a chat retrieves with: the message, or for a follow-up (see ``FOLLOW_UP``) the previous
    search query and the message together, so "When was it built?" after a question on a lighthouse
    still finds the lighthouse. A message that stands alone ("What is the capital of Peru?") is
    searched alone, so a change of subject is not pulled back to the last one."""
    message = " ".join(message.split())
    if previous and (FOLLOW_UP.search(message) or _words(message) <= 3):
        return " ".join(previous.split()[-QUERY_WORDS:] + [message])
    return message


def _words(text: str) -> int:
    """Words in ``text``, reading Han / kana runs (no spaces) as words of ``CJK_CHARS_PER_WORD`` characters."""
    from llmlab.apps.search import CJK

    runs = CJK.findall(text)
    return len(CJK.sub(" ", text).split()) + sum(math.ceil(len(r) / CJK_CHARS_PER_WORD) for r in runs)


# --- the prompt shared with inspect and chat -------------------------------------------------------
def grounded_message(question: str, passages: list[str], tokenizer, template, budget: int = PROMPT_TOKENS,
                     instruction: str = ASK_INSTRUCTION, label: str = "Question") -> tuple[str, list[tuple[str, bool]]]:
    """The user message holding the numbered passages, and each passage as shown (text, trimmed).

    The message, rendered alone with ``template``, takes at most ``budget`` tokens."""
    if not passages:
        raise LlmlabError("no passages to answer from")
    question = " ".join(question.split())
    passages = [_plain(p, tokenizer) for p in passages]
    room = budget - _tokens(tokenizer, template, _message(question, [""] * len(passages), instruction, label))
    room -= 2 * len(passages)  # token merges across the "[n] " joins
    if room < MIN_PASSAGE_TOKENS * len(passages):
        raise LlmlabError(f"the question is too long: with {len(passages)} passages the prompt would exceed "
                          f"{budget} tokens")
    shown = []
    for i, text in enumerate(passages):
        share = room // (len(passages) - i)
        ids = tokenizer.encode(text, special=False)
        if len(ids) > share:
            ids = ids[:share - 1]
            text, trimmed = tokenizer.decode(ids).rstrip() + "…", True
        else:
            trimmed = False
        room -= len(ids) + trimmed
        shown.append((text, trimmed))
    return _message(question, [t for t, _ in shown], instruction, label), shown


def source_message(question: str, sources: list[Source], tokenizer, template) -> str:
    """`grounded_message` for retrieved sources; each source's text becomes the text shown (maybe cut)."""
    content, shown = grounded_message(question, [s.text for s in sources], tokenizer, template)
    for s, (text, trimmed) in zip(sources, shown):
        s.text, s.trimmed = text, trimmed
    return content


def _message(question: str, passages: list[str], instruction: str, label: str) -> str:
    numbered = "\n\n".join(f"[{n}] {p}" for n, p in enumerate(passages, start=1))
    return f"Read these passages:\n\n{numbered}\n\n{instruction}\n{label}: {question}"


def _plain(text: str, tokenizer) -> str:
    """Passage text with special-token strings removed and whitespace runs made single spaces."""
    for special in tokenizer.special_tokens:
        text = text.replace(special, "")
    return " ".join(text.split())


def _tokens(tokenizer, template, content: str) -> int:
    return len(tokenizer.encode(template.render([{"role": "user", "content": content}])))


_CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def cited(answer: str, count: int) -> tuple[list[int], list[int]]:
    """(valid, invalid) passage numbers cited as [n] or [n, m] in ``answer``, in order of first mention."""
    numbers = [int(n) for group in _CITATION.findall(answer) for n in re.split(r"[,;]", group)]
    numbers = list(dict.fromkeys(numbers))
    return [n for n in numbers if 1 <= n <= count], [n for n in numbers if not 1 <= n <= count]


def citations(answer: str, sources: list[Source], encoder) -> tuple[list[int], list[int], bool]:
    """(valid, invalid, attributed): the answer's own [n] markers, or, when it has none, the
    sources matched to its sentences by similarity (`attribute`)."""
    valid, invalid = cited(answer, len(sources))
    if valid or not answer.strip():
        return valid, invalid, False
    matched = attribute(answer, [s.text for s in sources], encoder)
    return matched, invalid, bool(matched)


def attribute(answer: str, passages: list[str], encoder, threshold: float = ATTRIBUTION) -> list[int]:
    """Passage numbers (1-based) that the sentences of ``answer`` are most similar to, each kept when
    the MiniLM cosine is at least ``threshold``; in order of first match."""
    sentences = [t for t in re.split(r"(?<=[.!?])\s+", answer.strip()) if t.strip()]
    if not sentences or not passages:
        return []
    vectors = encoder.encode(sentences + passages)
    vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-12)
    sims = vectors[:len(sentences)] @ vectors[len(sentences):].T  # (sentences, passages) cosines
    best = sims.max(dim=1)
    return list(dict.fromkeys(int(i) + 1 for v, i in zip(best.values.tolist(), best.indices.tolist())
                              if v >= threshold))


# --- the model -----------------------------------------------------------------------------------
def load_chat_model(decoder=None):
    """The given decoder bundle, the bundle a given loader returns, or SmolLM2-135M-Instruct at int4
    (as `llmlab chat` runs it)."""
    if callable(decoder):
        return decoder()
    if decoder is not None:
        return decoder
    from llmlab.apps.bundled import chat_decoder

    return chat_decoder()


def chat_template(decoder):
    from llmlab.generate import ChatTemplate

    if not decoder.chat_template:
        raise LlmlabError("the model file has no chat template (tokenizer.chat_template)")
    tok = decoder.tokenizer
    return ChatTemplate(decoder.chat_template, tok.bos_token or "", tok.eos_token or "")


def generate(decoder, ids: list[int], max_new_tokens: int, on_text: Callable[[str], None] | None = None):
    """Greedy completion of prompt ``ids`` with the repetition penalty, up to the first blank line;
    pieces go to ``on_text``."""
    from llmlab.generate import GenerationConfig, stream

    config = GenerationConfig(max_new_tokens=max_new_tokens, stop=STOP, repetition_penalty=ANSWER_REPETITION_PENALTY)
    s = stream(decoder.model, decoder.tokenizer, ids, config)
    for piece in s:
        if on_text is not None:
            on_text(piece)
    return s.completion
