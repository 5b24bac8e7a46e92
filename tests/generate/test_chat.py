"""Chat templates from the model file, and the context-window policy for conversations."""

import pytest

from llmlab.errors import LlmlabError
from llmlab.generate import ChatSession, ChatTemplate, GenerationConfig

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi!"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "What is 2+2?"},
]


def test_template_renders_like_transformers(smollm2_model):
    from transformers import AutoTokenizer

    from llmlab.packages import smollm2_gguf

    path = smollm2_gguf()
    hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    ours = ChatTemplate(smollm2_model.chat_template)
    for messages in (MESSAGES, MESSAGES[1:]):
        for gen in (True, False):
            expected = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            assert ours.render(messages, add_generation_prompt=gen) == expected
    assert ours.render(MESSAGES[1:2]).endswith("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n")


def test_a_chat_turn_answers_and_is_remembered(smollm2_model):
    session = ChatSession(smollm2_model.model, smollm2_model.tokenizer, ChatTemplate(smollm2_model.chat_template),
                          system="Answer in one short sentence.", config=GenerationConfig(max_new_tokens=40))
    turn = session.send("What is the capital of France?")
    answer = "".join(turn)
    assert "Paris" in answer and turn.completion.finish_reason in ("eos", "length")
    assert session.messages[-1] == {"role": "assistant", "content": answer}
    session.reset()
    assert session.messages == []


def test_oldest_turns_are_dropped_with_notice(smollm2_model):
    # 8,000 new tokens leave ~190 tokens of the 8,192 context for the conversation
    session = ChatSession(smollm2_model.model, smollm2_model.tokenizer, ChatTemplate(smollm2_model.chat_template),
                          system="Be brief.", config=GenerationConfig(max_new_tokens=8000))
    long = "word " * 60
    for i in range(3):
        session.messages += [{"role": "user", "content": f"{i} {long}"}, {"role": "assistant", "content": "ok"}]
    turn = session.send("And now?")
    # three turns of ~65 tokens do not fit; dropping the oldest user/assistant pair is enough
    assert turn.dropped == 2 and session.dropped == 2 and session.messages[0]["content"].startswith("1 ")
    assert session.messages[-1] == {"role": "user", "content": "And now?"}
    ids, _ = session.prompt_ids()
    assert len(ids) + 8000 <= 8192
    with pytest.raises(LlmlabError, match="even the last message alone is too long"):
        session.send("word " * 300)
    assert session.messages[-1]["content"] == "And now?"  # the rejected message was not kept
    session.send("Still there?")  # "And now?" was never read: its question leaves the conversation
    assert [m["content"] for m in session.messages[-2:]] == ["ok", "Still there?"]


def test_an_empty_system_prompt_is_no_system_prompt(smollm2_model):
    """None: the template's default system message (SmolLM2 names itself); "": an empty one, not the default."""
    template = ChatTemplate(smollm2_model.chat_template)

    def prompt(system):
        session = ChatSession(smollm2_model.model, smollm2_model.tokenizer, template, system=system)
        session.messages.append({"role": "user", "content": "Hi"})
        return smollm2_model.tokenizer.decode(session.prompt_ids()[0])

    assert "SmolLM" in prompt(None)
    assert "SmolLM" not in prompt("") and prompt("").startswith("<|im_start|>system\n<|im_end|>")


def test_a_template_and_messages_must_be_text(smollm2_model):
    with pytest.raises(LlmlabError, match="a chat template is Jinja text"):
        ChatTemplate(None)
    session = ChatSession(smollm2_model.model, smollm2_model.tokenizer, ChatTemplate(smollm2_model.chat_template))
    for bad in (None, 5):
        with pytest.raises(LlmlabError, match="a message is a str"):
            session.send(bad)
    assert session.messages == []
    session.messages.append({"content": "no role"})
    with pytest.raises(LlmlabError, match="each message must be a dict with a 'role' and a 'content'"):
        session.send("Hi")
    with pytest.raises(LlmlabError, match="the system prompt is a str"):
        ChatSession(smollm2_model.model, smollm2_model.tokenizer, session.template, system=5)
    assert ChatSession(smollm2_model.model, smollm2_model.tokenizer, session.template, config=None).config == \
        GenerationConfig()


class Interrupting:
    """The model, with Ctrl-C pressed during its ``at``-th call (1: the prompt's prefill)."""

    def __init__(self, model, at: int):
        self.model, self.at, self.calls = model, at, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.model(*args, **kwargs)


def test_an_answer_stopped_by_ctrl_c(smollm2_model):
    """What was shown stays the answer (so "go on" can follow); stopped before any text, the question
    leaves the conversation. The session goes on either way."""
    template = ChatTemplate(smollm2_model.chat_template)
    session = ChatSession(Interrupting(smollm2_model.model, at=6), smollm2_model.tokenizer, template,
                          config=GenerationConfig(max_new_tokens=40))
    turn = session.send("Tell me about Paris.")
    shown = []
    with pytest.raises(KeyboardInterrupt):
        for piece in turn:
            shown.append(piece)
    c = turn.completion
    assert c.finish_reason == "interrupted" and len(c.ids) == 5 and c.text == "".join(shown) and c.text.strip()
    assert session.messages[-2:] == [{"role": "user", "content": "Tell me about Paris."},
                                     {"role": "assistant", "content": c.text}]
    session.model = Interrupting(smollm2_model.model, at=1)  # Ctrl-C during the prompt's prefill: nothing shown
    turn = session.send("And Rome?")
    with pytest.raises(KeyboardInterrupt):
        list(turn)
    assert turn.completion.text == "" and session.messages[-1]["content"] == c.text
    session.model = smollm2_model.model
    assert "".join(session.send("Thanks.")) and [m["role"] for m in session.messages] == ["user", "assistant"] * 2
