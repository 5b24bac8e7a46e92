"""Chat: the model's own template turns a list of messages into a prompt.

Chat models are fine-tuned on conversations written in a fixed format; SmolLM2's is
ChatML (``<|im_start|>user\\n...<|im_end|>``). The format ships inside the model file as
a Jinja template (GGUF ``tokenizer.chat_template``); we render that template, in a
sandbox, rather than hard-coding any format.

A model that carries no template (a base model pre-trained here with `llmlab train`) gets
`PLAIN_TEMPLATE`: each turn is the role in capitals, a colon, a newline, the text and a blank
line, like a play's script (only letters, ':' and newlines, so even a character vocabulary
learnt from Shakespeare can write it). A blank line ends an answer (`PLAIN_STOP`), so
`llmlab finetune sft` trains the model to write one and `llmlab chat` stops there.

Context-window policy: when the conversation plus the requested new tokens no longer fits
the model's context, the oldest turns (after the system message) are dropped, and the
caller is told how many (`ChatSession.dropped`), never silently.
Tests: tests/generate/test_chat.py.
"""

from dataclasses import dataclass, field

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmlab.errors import LlmlabError
from llmlab.generate.generate import ContextWindowError, GenerationConfig, Stream, check_context

PLAIN_TEMPLATE = ("{% for m in messages %}{{ m['role'] | upper }}:\n{{ m['content'] }}\n\n{% endfor %}"
                  "{% if add_generation_prompt %}ASSISTANT:\n{% endif %}")
PLAIN_STOP = ["\n\n"]  # the blank line that ends a turn of PLAIN_TEMPLATE


class ChatTemplate:
    def __init__(self, source: str, bos_token: str = "", eos_token: str = ""):
        if not isinstance(source, str):
            raise LlmlabError(f"a chat template is Jinja text (a str), not {type(source).__name__}")
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # as HF renders them

        def raise_exception(message):
            raise TemplateError(message)

        env.globals["raise_exception"] = raise_exception
        try:
            self.template = env.from_string(source)
        except TemplateError as e:
            raise LlmlabError(f"the model's chat template does not parse: {e}") from None
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        try:
            return self.template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                        bos_token=self.bos_token, eos_token=self.eos_token)
        except TemplateError as e:
            raise LlmlabError(f"chat template: {e}") from None


@dataclass
class ChatSession:
    """A conversation with a chat model; `send` streams the assistant's answer."""

    model: object
    tokenizer: object
    template: ChatTemplate
    system: str | None = None
    config: GenerationConfig = field(default_factory=GenerationConfig)
    messages: list[dict[str, str]] = field(default_factory=list)  # user/assistant turns, oldest first
    dropped: int = 0  # turns dropped from the start to fit the context window (in total)

    def __post_init__(self):
        self.config = self.config if self.config is not None else GenerationConfig()
        if self.system is not None and not isinstance(self.system, str):
            raise LlmlabError(f"the system prompt is a str, not {type(self.system).__name__}")

    def reset(self) -> None:
        self.messages.clear()
        self.dropped = 0

    def prompt_ids(self) -> tuple[list[int], int]:
        """Ids of the rendered conversation, and how many old turns had to go to fit."""
        context = self.model.config.max_seq_len
        # None: the template's own default (SmolLM2 names itself); "": an empty system message, no default
        head = [{"role": "system", "content": self.system}] if self.system is not None else []
        turns, dropped = list(self.messages), 0
        while True:
            ids = self.tokenizer.encode(self.template.render(head + turns))
            if len(ids) + self.config.max_new_tokens <= context or len(turns) <= 1:
                break
            turns = turns[2:] if len(turns) > 2 and turns[0]["role"] == "user" else turns[1:]
            dropped = len(self.messages) - len(turns)
        try:
            check_context(len(ids), self.config.max_new_tokens, context)
        except ContextWindowError as e:
            raise ContextWindowError(f"even the last message alone is too long: {e}") from None
        return ids, dropped

    def send(self, text: str) -> "ChatTurn":
        if not isinstance(text, str):
            raise LlmlabError(f"a message is a str, not {type(text).__name__}")
        if not text.strip():
            raise LlmlabError("empty message")
        # a turn not read to its end has no answer: its question leaves the conversation (user/assistant pairs)
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                   for m in self.messages):
            raise LlmlabError("each message must be a dict with a 'role' and a 'content' (str)")
        unread = self.messages.pop() if self.messages and self.messages[-1]["role"] == "user" else None
        self.messages.append({"role": "user", "content": text})
        try:
            ids, dropped = self.prompt_ids()
        except LlmlabError:
            self.messages[-1:] = [unread] if unread else []
            raise
        if dropped:
            del self.messages[:dropped]
            self.dropped += dropped
        return ChatTurn(self, Stream(self.model, self.tokenizer, ids, self.config), dropped)


class ChatTurn:
    """One streamed answer; the answer joins the conversation when the stream ends."""

    def __init__(self, session: ChatSession, stream: Stream, dropped: int):
        self.session, self.stream, self.dropped = session, stream, dropped

    def __iter__(self):
        try:
            yield from self.stream
        except KeyboardInterrupt:  # stopped by the user: what was shown stays the answer ("go on" can follow)
            if self.stream.completion.text.strip():
                self.session.messages.append({"role": "assistant", "content": self.stream.completion.text})
            elif self.session.messages and self.session.messages[-1]["role"] == "user":
                self.session.messages.pop()  # nothing was answered: the question leaves the conversation
            raise
        self.session.messages.append({"role": "assistant", "content": self.stream.completion.text})

    @property
    def completion(self):
        return self.stream.completion
