"""One document, read for the user: a summary, its central sentences, and answers with quotes.

- **Summary (abstractive, map-reduce).** The document's sentences are packed into parts of at
  most ``part_tokens`` tokens (a sentence longer than a part is cut by tokens); SmolLM2
  summarises each part, the part summaries are packed and summarised again, level after level,
  until one text remains. Every prompt is at most ``PROMPT_TOKENS`` (llmlab.apps.ask) tokens,
  so a document of any length is summarised in small CPU-sized calls; the prompt size of every
  call is kept in ``Inspection.prompt_tokens``. Levels shrink because a part summary
  (at most ``summary_tokens``) is much shorter than a part. A summary that reaches
  ``summary_tokens`` loses its unfinished last sentence. Decoding is greedy with CTRL's
  repetition penalty (``SUMMARY_REPETITION_PENALTY`` = 1.1 on the summary's last 64 tokens, as
  `llmlab chat`): without it 60 of 100 DialogSum summaries and 6 of 8 long speeches repeated a
  4-word phrase, with it 18 and 0, and ROUGE-L rose 0.151 -> 0.167 (bench/inspect.py).
- **Central sentences (extractive).** MiniLM embeds every sentence; a sentence's centrality is
  its cosine similarity to the mean of all sentence vectors (the document's centroid). The top
  ``sentences`` are returned in document order, verbatim, so a reader can check the summary
  against the text.
- **Questions and checklist items.** The document is cut into 200-token chunks
  (`search.chunk_text`) embedded in memory; the best ``k`` chunks become numbered passages in the
  same prompt as `llmlab ask` (`ask.grounded_message`). When the best chunk is below the relevance
  threshold (0.30) and the best sentence below ``SENTENCE_RELEVANCE`` (0.45), the answer is "not
  found in the document" and the model is not called: a question about one clause of a contract
  can be far from every chunk, which mixes clauses, and close to one sentence (on SciFact the
  sentence gate keeps 98.5% of answerable claims and still rejects 100% of off-topic questions,
  bench/inspect.py calibrate); the best sentence's chunk is then among the passages. Each answer
  carries a quote: the document sentence (of four words or more, when there is one), inside the
  passages it cites (or the best passage when it cites none), most similar to the question and
  the answer together, copied verbatim. A checklist item's verdict
  is the answer's first word when that is yes or no, otherwise "unclear".

Sentences (`split_sentences`): a paragraph break, a line break before a character that is not
a lower-case letter, or ``.``, ``!``, ``?`` (optionally closed by quotes or brackets) followed by
space and a character that is not a lower-case letter, unless the word before is a title (Mr.,
Dr., St., Gen. ...), an initial (John F. Kennedy) or initials (U.S.); in Chinese and Japanese,
``。``, ``！``, ``？`` (optionally closed by quotes or brackets), with or without space after them.
Tests: tests/apps/test_inspect.py; ROUGE-L on DialogSum: bench/inspect.py.
"""

import numbers
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from llmlab.apps.ask import PROMPT_TOKENS, RELEVANCE, chat_template, cited, generate, grounded_message, load_chat_model
from llmlab.apps.documents import SUFFIXES, read_document
from llmlab.apps.inputs import text_list
from llmlab.errors import LlmlabError
from llmlab.plain import plain

NOT_FOUND = "not found in the document"
QUESTION_INSTRUCTION = "Using only these passages, answer in one sentence and cite the passage number like [1]."
CHECK_INSTRUCTION = ("Using only these passages, say whether the document meets this checklist item: start with "
                     "Yes or No, then give the reason in one sentence and cite the passage number like [1].")
SUMMARIZE = "Summarize this document in a few sentences.\n\n{}"
SUMMARIZE_PART = "Summarize this part of a longer document in two or three sentences.\n\n{}"
COMBINE = ("These are summaries of consecutive parts of one document:\n\n{}\n\n"
           "Combine them into one summary of a few sentences.")
SUMMARY_REPETITION_PENALTY = 1.1
SENTENCE_RELEVANCE = 0.45  # or the best sentence's cosine at least this: found (bench/inspect.py calibrate)
_BOUNDARY = re.compile(r"\n\s*\n|\n[ \t]*(?=[^a-z\s])|(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+(?=[^a-z\s])"
                       # Chinese / Japanese: no space after the mark
                       r"|(?:(?<=[。！？])|(?<=[。！？][”’」』）]))(?![”’」』）。！？])\s*")


@dataclass
class Finding:
    question: str  # the question or checklist item
    answer: str
    quote: str | None  # verbatim sentence of the document the answer rests on
    citations: list[int] = field(default_factory=list)  # passages the answer cites, [n]
    verdict: str | None = None  # checklist items: "yes", "no", "unclear" or "not found"
    found: bool = True
    relevance: float = 0.0  # best chunk's cosine similarity to the question
    sentence_relevance: float = 0.0  # best sentence's


@dataclass
class Inspection:
    source: str  # the path, or "<text>"
    text: str = field(repr=False)  # the whole document: not in the repr
    tokens: int  # SmolLM2 tokens in the document
    summary: str | None = None
    parts: list[int] = field(default_factory=list)  # texts summarised at each level (first: the document's parts)
    central: list[str] = field(default_factory=list)  # extractive: the most central sentences, in document order
    answers: list[Finding] = field(default_factory=list)
    checklist: list[Finding] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)  # prompt size of every model call, in order

    def to_dict(self) -> dict:
        """The result as plain JSON values (what `llmlab inspect --format json` prints); the
        document's text is left out."""
        return plain({"document": self.source, "tokens": self.tokens, "summary": self.summary, "parts": self.parts,
                      "central": self.central, "answers": [asdict(f) for f in self.answers],
                      "checklist": [asdict(f) for f in self.checklist], "prompt_tokens": self.prompt_tokens})


def inspect(path_or_text: str | Path, summary: bool = True, questions=(), checklist=(), decoder=None,
            encoder=None, sentences: int = 5, k: int = 3, part_tokens: int = 900, summary_tokens: int = 120,
            max_new_tokens: int = 120, threshold: float = RELEVANCE, sentence_threshold: float = SENTENCE_RELEVANCE,
            progress: bool = False, encoding: str | None = None,
            repetition_penalty: float = SUMMARY_REPETITION_PENALTY) -> Inspection:
    """Summarise a document and answer questions on it.

    ``path_or_text``: a `Path`, or a one-line string that names an existing file or ends in a
    document suffix (.txt, .md, .html, .pdf, .docx), is read with `read_document` (in
    ``encoding``, if given); any other string is the text itself. ``questions`` / ``checklist``:
    lists of str (one str is one question / item).
    ``decoder`` / ``encoder`` default to SmolLM2-135M-Instruct (int4) / MiniLM.
    ``repetition_penalty`` applies to the summaries (1 = off); ``threshold`` / ``sentence_threshold``:
    the best chunk's / sentence's cosine to a question at which it counts as found."""
    if isinstance(path_or_text, Path) or _names_file(path_or_text):
        source, text = str(path_or_text), read_document(path_or_text, encoding)
    elif isinstance(path_or_text, str):
        source, text = "<text>", path_or_text
    else:
        raise LlmlabError(f"inspect reads a document's path or its text, not {type(path_or_text).__name__}")
    questions, checklist = _items(questions, "questions"), _items(checklist, "checklist")
    if not all(q.strip() for q in questions + checklist):  # before any model is loaded
        raise LlmlabError("a question or checklist item is empty")
    if not text.strip():
        raise LlmlabError("the document has no text")
    for name, value, low in (("k", k, 1), ("sentences", sentences, 0), ("max_new_tokens", max_new_tokens, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise LlmlabError(f"{name} must be a whole number of at least {low}, not {value!r}")
    if not 2 * summary_tokens <= part_tokens <= PROMPT_TOKENS - 100:
        raise LlmlabError(f"part_tokens must be in {2 * summary_tokens}..{PROMPT_TOKENS - 100}, not {part_tokens}")
    if summary or questions or checklist:
        decoder = load_chat_model(decoder)
    if encoder is None and (summary or questions or checklist):
        from llmlab.apps.bundled import sentence_encoder

        encoder = sentence_encoder()
    from llmlab.tokenize import load_tokenizer

    tok = decoder.tokenizer if decoder is not None else load_tokenizer("smollm2")
    result = Inspection(source, text, len(tok.encode(text, special=False)))
    spans = split_sentences(text)
    if summary:
        result.summary = _summarize(text, spans, decoder, part_tokens, summary_tokens, result, progress,
                                    repetition_penalty)
        result.central = central_sentences([text[a:b] for a, b in spans], encoder, sentences, progress)
    if questions or checklist:
        reader = _Reader(text, spans, decoder, encoder, k, (threshold, sentence_threshold), max_new_tokens,
                         result.prompt_tokens, progress)
        items = [(q, False) for q in questions] + [(c, True) for c in checklist]
        found = [reader.answer(item, CHECK_INSTRUCTION if check else QUESTION_INSTRUCTION,
                               "Checklist item" if check else "Question", verdict=check)
                 for item, check in tqdm(items, desc="answering", unit="item", disable=not progress or len(items) < 2)]
        result.answers, result.checklist = found[:len(questions)], found[len(questions):]
    return result


# --- sentences ---------------------------------------------------------------------------------
_TITLE = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Messrs|Dr|Prof|Sr|Jr|St|Mt|Gen|Sen|Rep|Gov|Lt|Col|Capt)"
                    r"|(?<![\w.])[A-Z]|\b(?:[A-Z]\.)+[A-Z])\.[\"'”’)\]]?$"  # titles, initials, U.S.
                    r"|\b(?i:e\.g|i\.e|cf|vs|viz|approx|incl|esp|et al)\.$")  # abbreviations that never end one
# "Art. 6", "Sec. 4(b)", "p. 12": a reference to a numbered part, not the end of a sentence
_BEFORE_NUMBER = re.compile(r"\b(?:Nos?|[Aa]rts?|[Ss]ecs?|[Pp]aras?|[Ff]igs?|[Tt]ab|[Vv]ol|[Cc]h|[Ee]q|Ex|Cl|Sch|pp?)"
                            r"\.$")


def _names_file(value) -> bool:
    """Whether a string is meant as a file: one line, and an existing file or a document's name."""
    if not isinstance(value, str) or "\n" in value or len(value) >= 4096:
        return False
    try:
        return Path(value).suffix.lower() in SUFFIXES or Path(value).is_file()
    except (OSError, ValueError):  # a name too long for the system, a NUL byte
        return False


def _items(values, name: str) -> list[str]:
    """Questions or checklist items as a list of str; one str is one item."""
    if values is None:
        return []
    return [values] if isinstance(values, str) else text_list(values, name)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, whitespace excluded; ``text[start:end]`` is verbatim."""
    spans, start = [], 0
    for m in [*_BOUNDARY.finditer(text), None]:
        if m and m.group().count("\n") < 2 and (
                _TITLE.search(text, max(start, m.start() - 8), m.start())
                or (text[m.end():m.end() + 1].isdigit() and _BEFORE_NUMBER.search(text, max(start, m.start() - 6),
                                                                                  m.start()))):
            continue  # "Mr. Speaker", "John F. Kennedy", "e.g. Python", "Art. 6": not the end of a sentence
        end = m.start() if m else len(text)
        piece = text[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + len(piece.rstrip())))
        if m:
            start = m.end()
    return spans


def central_sentences(sentences: list[str], encoder, n: int = 5, progress: bool = False) -> list[str]:
    """The ``n`` sentences most similar to the centroid of all sentence vectors, in document order.

    Sentences of fewer than four words (headings, "Yes.") are not candidates unless nothing else is."""
    if n < 1 or not sentences:
        return []
    candidates = [i for i, s in enumerate(sentences) if len(s.split()) >= 4] or list(range(len(sentences)))
    vectors = _unit(encoder.encode([sentences[i] for i in candidates],
                                    progress=progress and len(candidates) > 256).numpy())
    centroid = vectors.mean(axis=0)
    scores = vectors @ (centroid / max(np.linalg.norm(centroid), 1e-12))
    top = sorted(np.argsort(-scores, kind="stable")[:n])
    return [sentences[candidates[i]] for i in top]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# --- summary -----------------------------------------------------------------------------------
def _summarize(text, spans, decoder, part_tokens, summary_tokens, result, progress, repetition_penalty) -> str:
    from llmlab.apps.search import chunk_text

    tok = decoder.tokenizer
    units = []  # (start, end) spans of at most part_tokens tokens: sentences, or token windows of long ones
    for a, b in spans:
        if len(tok.encode(text[a:b], special=False)) <= part_tokens:
            units.append((a, b))
            continue
        pos = a
        for piece in chunk_text(text[a:b], tok, part_tokens, 0):
            s = text.find(piece, pos, b)
            units.append((s, s + len(piece)) if s >= 0 else (pos, b))  # a window cut inside a character
            pos = max(pos, units[-1][1])
    sizes = [len(tok.encode(text[a:b], special=False)) + 1 for a, b in units]  # + 1: the space or break before it
    parts = [text[units[g[0]][0]:units[g[-1]][1]] for g in _pack(sizes, part_tokens)]
    template = chat_template(decoder)

    def call(instruction: str, body: str) -> str:
        ids = tok.encode(template.render([{"role": "user", "content": instruction.format(body)}]))
        if len(ids) > PROMPT_TOKENS:
            raise LlmlabError(f"internal: a summary prompt of {len(ids)} tokens exceeds {PROMPT_TOKENS}")
        result.prompt_tokens.append(len(ids))
        return _complete(decoder, ids, summary_tokens, repetition_penalty)

    level = 0
    while len(parts) > 1:
        result.parts.append(len(parts))
        level += 1
        bar = tqdm(parts, desc=f"summarising, level {level}", unit="part", disable=not progress)
        summaries = [call(SUMMARIZE_PART, part) for part in bar]
        sizes = [len(tok.encode(s, special=False)) + 1 for s in summaries]
        groups = _pack(sizes, part_tokens)
        if len(groups) == 1:
            return call(COMBINE, "\n\n".join(summaries))
        parts = ["\n\n".join(summaries[i] for i in g) for g in groups]
    result.parts.append(1)
    return call(SUMMARIZE, parts[0])


def _pack(sizes: list[int], limit: int) -> list[list[int]]:
    """Consecutive indices grouped so that each group's sizes sum to at most ``limit``."""
    groups, total = [[]], 0
    for i, size in enumerate(sizes):
        if groups[-1] and total + size > limit:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += size
    return groups


def _complete(decoder, ids: list[int], max_new_tokens: int, repetition_penalty: float = 1.0) -> str:
    """Greedy completion without a stop string (a summary may have several paragraphs); a summary
    cut by ``max_new_tokens`` loses its unfinished last sentence."""
    from llmlab.generate import GenerationConfig, complete

    config = GenerationConfig(max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
    c = complete(decoder.model, decoder.tokenizer, ids, config)
    text = c.text.strip()
    spans = split_sentences(text)
    if c.finish_reason == "length" and len(spans) > 1:
        text = text[:spans[-2][1]]
    return text


# --- questions ---------------------------------------------------------------------------------
class _Reader:
    """Questions answered from one document's chunks, embedded once."""

    def __init__(self, text, spans, decoder, encoder, k, thresholds, max_new_tokens, prompt_tokens, progress=False):
        from llmlab.apps.search import chunk_text

        self.text, self.spans, self.decoder, self.encoder = text, spans, decoder, encoder
        self.k, self.thresholds, self.max_new_tokens, self.prompt_tokens = k, thresholds, max_new_tokens, prompt_tokens
        self.template = chat_template(decoder)
        self.chunks = chunk_text(text, decoder.tokenizer)
        big = progress and len(self.chunks) > 256  # a long document: minutes of embedding, so bars
        self.vectors = _unit(encoder.encode(self.chunks, progress=big).numpy())  # (chunks, dim)
        self.chunk_spans, pos = [], 0  # where each chunk lies in the text (None: not found verbatim)
        for chunk in self.chunks:
            s = text.find(chunk.strip("\ufffd"), pos)
            self.chunk_spans.append((s, s + len(chunk.strip("\ufffd"))) if s >= 0 else None)
            pos = s if s >= 0 else pos
        sentences = [text[a:b] for a, b in spans]
        self.sentence_vectors = _unit(encoder.encode(sentences, progress=big).numpy())  # (sentences, dim)

    def answer(self, question: str, instruction: str, label: str, verdict: bool = False) -> Finding:
        if not question.strip():
            raise LlmlabError(f"empty {label.lower()}")
        q = _unit(self.encoder.encode([question]).numpy()[0])
        scores = self.vectors @ q
        top = [int(i) for i in np.argsort(-scores, kind="stable")[:self.k]]
        relevance = float(scores[top[0]])
        by_sentence = self.sentence_vectors @ q
        best = int(np.argmax(by_sentence))
        sentence_relevance = float(by_sentence[best])
        if relevance < self.thresholds[0] and sentence_relevance < self.thresholds[1]:
            return Finding(question, NOT_FOUND, None, [], "not found" if verdict else None, False, relevance,
                           sentence_relevance)
        a, b = self.spans[best]  # the passages hold the best sentence's chunk, first when it is not among them
        home = next((i for i, c in enumerate(self.chunk_spans) if c and a < c[1] and b > c[0]), top[0])
        if home not in top:
            top = [home] + top[:-1]
        tok = self.decoder.tokenizer
        content, _ = grounded_message(question, [self.chunks[i] for i in top], tok, self.template,
                                      instruction=instruction, label=label)
        ids = tok.encode(self.template.render([{"role": "user", "content": content}]))
        self.prompt_tokens.append(len(ids))
        answer = generate(self.decoder, ids, self.max_new_tokens).text.strip()
        citations, _ = cited(answer, len(top))
        quote = self._quote(question, answer, [top[n - 1] for n in citations] or top[:1])
        said = None
        if verdict:
            m = re.match(r"\W*(yes|no)\b", answer, re.IGNORECASE)
            said = m.group(1).lower() if m else "unclear"
        return Finding(question, answer, quote, citations, said, True, relevance, sentence_relevance)

    def _quote(self, question: str, answer: str, chunks: list[int]) -> str:
        """The sentence inside ``chunks`` most similar to the question and the answer; sentences of
        fewer than four words (headings, "Fee") only when there is nothing else."""
        spans = self.spans
        inside = [j for j, (a, b) in enumerate(spans)
                  if any(s and a < s[1] and b > s[0] for s in (self.chunk_spans[i] for i in chunks))]
        if not inside:  # a chunk not found verbatim: sentences whose text it holds
            inside = [j for j, (a, b) in enumerate(spans) if any(self.text[a:b] in self.chunks[i] for i in chunks)]
        inside = inside or list(range(len(spans)))
        inside = [j for j in inside if len(self.text[slice(*spans[j])].split()) >= 4] or inside  # no headings
        qa = _unit(self.encoder.encode([question, answer]).numpy())
        scores = self.sentence_vectors[inside] @ qa.sum(axis=0)  # the sentences were embedded once, up front
        a, b = spans[inside[int(np.argmax(scores))]]
        return self.text[a:b]
