"""Inspect documents the tests write: map-reduce prompt sizes, verbatim sentences and quotes."""

import sys

import numpy as np
import pytest
import torch

from llmlab.apps.ask import PROMPT_TOKENS, RELEVANCE
from llmlab.apps.inspect import (
    NOT_FOUND,
    SENTENCE_RELEVANCE,
    SUMMARIZE,
    SUMMARY_REPETITION_PENALTY,
    inspect,
    split_sentences,
)
from llmlab.errors import LlmlabError

TOWN = """# Kerrow

Kerrow is a fishing town on the west coast. The lighthouse at Kerrow Point was built in 1887 by the engineer Alma Reyes.
Its lamp can be seen 40 kilometres out to sea.

The town holds a boat festival every August. Hundreds of sailors race small wooden boats across the bay, and the
winner receives a silver cup.

Most families in Kerrow have fished for generations. The harbour was rebuilt in 1952 after a storm destroyed the old
pier, and today it shelters about sixty boats.
"""


@pytest.fixture(scope="module")
def encoder():
    from llmlab.weights.registry import load_encoder

    return load_encoder("minilm")


def test_sentences_are_verbatim_spans():
    text = 'Dr. Watson came. He said "yes." Then e.g. this stays.\n#Person1#: Hi!\n#Person2#: fine\nwrapped on.\n\nEnd'
    sentences = [text[a:b] for a, b in split_sentences(text)]
    assert sentences == ["Dr. Watson came.", 'He said "yes."', "Then e.g. this stays.", "#Person1#: Hi!",
                         "#Person2#: fine\nwrapped on.", "End"]
    speech = "Mr. Speaker, Mr.\nPresident: the U.S. Army and John F. Kennedy. Gen. Marshall spoke.\n\nSt. Louis."
    assert [speech[a:b] for a, b in split_sentences(speech)] == [
        "Mr. Speaker, Mr.\nPresident: the U.S. Army and John F. Kennedy.", "Gen. Marshall spoke.", "St. Louis."]
    refs = ("Languages, e.g. Python and Go, work. Smith et al. (2005) found 5.2 vs. 4.1 mg. See Art. 6 GDPR "
            "and Sec. 4(b) on p. 12. He said no. 5 came.")
    assert [refs[a:b] for a, b in split_sentences(refs)] == [
        "Languages, e.g. Python and Go, work.", "Smith et al. (2005) found 5.2 vs. 4.1 mg.",
        "See Art. 6 GDPR and Sec. 4(b) on p. 12.", "He said no.", "5 came."]
    assert split_sentences("") == [] and split_sentences("  one  ") == [(2, 5)]
    zh = "长城很长。它有两千多年的历史！你去过吗？\n\n他说：“我去过。”然后走了。「かぎ括弧。」最後！？ 本当に。"
    assert [zh[a:b] for a, b in split_sentences(zh)] == [
        "长城很长。", "它有两千多年的历史！", "你去过吗？", "他说：“我去过。”", "然后走了。",
        "「かぎ括弧。」", "最後！？", "本当に。"]


def test_long_document_summary_fits_the_context(smollm2_model, monkeypatch):
    """A document ~3x SmolLM2's 8,192-token window: every prompt stays within PROMPT_TOKENS, levels shrink."""
    calls = []

    def fake_complete(decoder, ids, max_new_tokens, repetition_penalty):  # stands in for the model
        assert repetition_penalty == SUMMARY_REPETITION_PENALTY
        calls.append(len(ids))
        return "This part says many things about the topics. " * 11

    class Encoder:  # stands in for MiniLM
        def encode(self, texts, **kwargs):
            return torch.tensor([[len(t), 1.0] for t in texts])

    # sys.modules: the package's `inspect` attribute is the function, not this module
    monkeypatch.setattr(sys.modules["llmlab.apps.inspect"], "_complete", fake_complete)
    text = " ".join(f"Sentence number {i} talks about topic {i % 17} in some detail." for i in range(1800))
    r = inspect(text, decoder=smollm2_model, encoder=Encoder(), sentences=3)
    assert r.tokens > 3 * smollm2_model.config.max_seq_len
    assert r.prompt_tokens == calls and max(calls) <= PROMPT_TOKENS
    assert len(r.parts) == 2 and r.parts[0] > 25 and 1 < r.parts[1] < r.parts[0]  # two map levels, then combine
    assert len(calls) == sum(r.parts) + 1
    assert all(c + 120 <= smollm2_model.config.max_seq_len for c in calls)


def test_summary_sentences_and_quotes(smollm2_model, encoder):
    r = inspect(TOWN, summary=True, questions=["Who built the lighthouse at Kerrow Point?",
                                               "What is the recommended dose of ibuprofen for children?"],
                checklist=["The lighthouse was built in the nineteenth century."], decoder=smollm2_model,
                encoder=encoder, sentences=2, part_tokens=80, summary_tokens=8, max_new_tokens=20)
    assert r.summary and r.parts[0] > 1 and max(r.prompt_tokens) <= PROMPT_TOKENS
    assert len(r.central) == 2 and all(s in TOWN for s in r.central)
    assert TOWN.index(r.central[0]) < TOWN.index(r.central[1])  # document order
    fact, unrelated = r.answers
    assert fact.found and fact.quote in TOWN and "Alma Reyes" in fact.quote
    assert (unrelated.found, unrelated.answer, unrelated.quote) == (False, NOT_FOUND, None)
    item = r.checklist[0]
    assert item.verdict in ("yes", "no", "unclear") and item.quote in TOWN and "1887" in item.quote



def test_summaries_decode_with_the_repetition_penalty(smollm2_model, encoder):
    """One part: the summary is the greedy completion of the SUMMARIZE prompt under the given penalty."""
    from llmlab.generate import ChatTemplate, GenerationConfig, complete

    tok = smollm2_model.tokenizer
    ids = tok.encode(ChatTemplate(smollm2_model.chat_template, tok.bos_token or "", tok.eos_token or "").render(
        [{"role": "user", "content": SUMMARIZE.format(TOWN.strip())}]))  # one part: first to last sentence
    summaries = []
    for penalty in (1.0, 1.3):
        r = inspect(TOWN, decoder=smollm2_model, encoder=encoder, sentences=1, summary_tokens=60,
                    repetition_penalty=penalty)
        c = complete(smollm2_model.model, tok, ids, GenerationConfig(max_new_tokens=60, repetition_penalty=penalty))
        assert r.parts == [1] and r.prompt_tokens == [len(ids)] and r.summary and c.text.strip().startswith(r.summary)
        summaries.append(r.summary)
    assert summaries[0] != summaries[1]


CONTRACT = ("Service agreement\n\nThis agreement between Acme Ltd and Beta GmbH starts on 1 March 2026 and runs "
            "for 12 months.\n\nEither party may end it with 30 days written notice. Personal data is processed under "
            "the GDPR, and Acme names Jane Roe as its data protection officer.\n\nMonthly fee\n\nEUR 100")


def test_quotes_are_sentences_not_headings(smollm2_model, encoder):
    """A heading that shares the question's words ("Service agreement") is no quote to rest an answer on."""
    r = inspect(CONTRACT, summary=False, questions="How long does the agreement run?", decoder=smollm2_model,
                encoder=encoder, max_new_tokens=20)  # one str: one question
    assert len(r.answers) == 1 and r.answers[0].question == "How long does the agreement run?"
    assert r.answers[0].found and "runs for 12 months" in r.answers[0].quote


def test_one_sentence_is_enough_to_find_an_answer(smollm2_model, encoder):
    """A clause far from the whole chunk (which mixes clauses) but close to one sentence is found."""
    item = "Does it name a data protection officer?"
    off_topic = "What is the recommended dose of ibuprofen for children?"
    r = inspect(CONTRACT, summary=False, checklist=[item, off_topic], decoder=smollm2_model, encoder=encoder,
                max_new_tokens=12)
    dpo, unrelated = r.checklist
    assert dpo.relevance < RELEVANCE <= SENTENCE_RELEVANCE <= dpo.sentence_relevance
    assert dpo.found and "Jane Roe" in dpo.quote and dpo.verdict != "not found"
    assert (unrelated.found, unrelated.verdict) == (False, "not found")
    assert unrelated.sentence_relevance < SENTENCE_RELEVANCE
    chunk_only = inspect(CONTRACT, summary=False, checklist=[item], decoder=smollm2_model, encoder=encoder,
                         sentence_threshold=1.01).checklist[0]  # the sentence gate off: the chunk alone misses it
    assert (chunk_only.found, chunk_only.verdict) == (False, "not found")

def test_reads_files_and_rejects_empty_text(tmp_path, encoder):
    (tmp_path / "town.md").write_text(TOWN, encoding="utf-8")
    r = inspect(tmp_path / "town.md", summary=False, encoder=encoder)
    assert (r.source, r.text, r.summary, r.answers) == (str(tmp_path / "town.md"), TOWN, None, [])
    with pytest.raises(LlmlabError, match="no such file"):
        inspect(str(tmp_path / "missing.pdf"), summary=False, encoder=encoder)
    with pytest.raises(LlmlabError, match="no text"):
        inspect("   \n", summary=False, encoder=encoder)
    # a string naming an existing file is that file, never a two-word document about its name
    (tmp_path / "NOTES").write_text(TOWN, encoding="utf-8")
    with pytest.raises(LlmlabError, match="unsupported document type"):
        inspect(str(tmp_path / "NOTES"), summary=False, encoder=encoder)
    assert inspect("NOTES", summary=False, encoder=encoder).text == "NOTES"  # no such file here: a text
    with pytest.raises(LlmlabError, match="not int"):
        inspect(5, summary=False)
    with pytest.raises(LlmlabError, match="k must be a whole number of at least 1, not 0"):
        inspect(TOWN, summary=False, questions=["Who?"], k=0)
    with pytest.raises(LlmlabError, match="a question or checklist item is empty"):
        inspect(TOWN, summary=True, questions=["Who?", None])  # before the summary is made
    assert inspect(TOWN, summary=False, k=np.int64(2), encoder=encoder).tokens > 0


def test_cli_checklist_layout_and_json(smollm2_model, tmp_path, capsys, monkeypatch):
    """The terminal layout keeps a many-line answer under its item; JSON holds every finding with its quote."""
    import json
    from types import SimpleNamespace

    import llmlab.apps  # noqa: F401  (the package's `inspect` attribute is the function)
    from llmlab.cli import main

    monkeypatch.setattr("llmlab.weights.registry.load_decoder", lambda *a, **k: smollm2_model)
    monkeypatch.setattr(sys.modules["llmlab.apps.inspect"], "generate",  # a small model's list-shaped answer
                        lambda decoder, ids, max_new_tokens: SimpleNamespace(text="1. Yes\n\n2. Built in 1887 [1]"))
    doc, items = tmp_path / "town.txt", tmp_path / "checks.txt"
    doc.write_text(TOWN, encoding="utf-8")
    items.write_text("The lighthouse was built in the nineteenth century.\n\n", encoding="utf-8")
    assert main(["inspect", str(doc), "--checklist", str(items), "--ask", "Who built the lighthouse?", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "A: 1. Yes\n   2. Built in 1887 [1]\n   quote: \"" in out
    item = "  [unclear] The lighthouse was built in the nineteenth century."
    assert f"{item}\n      1. Yes\n      2. Built in 1887" in out
    assert main(["inspect", str(doc), "--checklist", str(items), "--quiet", "--format", "json"]) == 0
    (finding,) = json.loads(capsys.readouterr().out)["checklist"]
    assert finding["verdict"] == "unclear" and finding["quote"] in TOWN and finding["citations"] == [1]


def test_checklist_verdict_is_the_answers_first_word(smollm2_model, encoder, monkeypatch):
    """Yes / No as the first word (after punctuation) is the verdict; an answer that starts otherwise is unclear."""
    from types import SimpleNamespace

    answers = iter(["Yes, built in 1887 [1]", "No. The contract says nothing about it [1]", "1. Yes 2. No"])
    monkeypatch.setattr(sys.modules["llmlab.apps.inspect"], "generate",
                        lambda decoder, ids, max_new_tokens: SimpleNamespace(text=next(answers)))
    items = ["The lighthouse at Kerrow Point was built in 1887.", "The harbour was rebuilt in 1952 after a storm.",
             "The town holds a boat festival every August."]
    r = inspect(TOWN, summary=False, checklist=items, decoder=smollm2_model, encoder=encoder)
    assert [f.found for f in r.checklist] == [True, True, True]  # every item reached the (stand-in) model
    assert [f.answer for f in r.checklist] == ["Yes, built in 1887 [1]", "No. The contract says nothing about it [1]",
                                               "1. Yes 2. No"]
    assert [f.verdict for f in r.checklist] == ["yes", "no", "unclear"]
    assert [f.citations for f in r.checklist] == [[1], [1], []]  # TOWN is one 200-token chunk: one passage


def test_a_summary_cut_by_the_token_limit_loses_its_unfinished_sentence(monkeypatch):
    from types import SimpleNamespace

    import llmlab.generate

    inspect_module = sys.modules["llmlab.apps.inspect"]
    given = {}

    def fake_complete(model, tokenizer, ids, config, **kwargs):
        given["max_new_tokens"], given["penalty"] = config.max_new_tokens, config.repetition_penalty
        return SimpleNamespace(text=given["text"], finish_reason=given["reason"])

    monkeypatch.setattr(llmlab.generate, "complete", fake_complete)
    decoder = SimpleNamespace(model=None, tokenizer=None)

    def summary(text, reason):
        given["text"], given["reason"] = text, reason
        return inspect_module._complete(decoder, [1, 2, 3], 7, 1.1)

    assert summary(" A one. B two. C unfin", "length") == "A one. B two."
    assert (given["max_new_tokens"], given["penalty"]) == (7, 1.1)
    assert summary("A one. B two. C unfin", "eos") == "A one. B two. C unfin"  # ended by the model: kept whole
    assert summary("A one. B two. C done.", "stop") == "A one. B two. C done."
    assert summary("Only one sentence, cut befo", "length") == "Only one sentence, cut befo"  # nothing else to keep
    assert summary("Mr. Reyes built it. Then Dr. Watson ca", "length") == "Mr. Reyes built it."
