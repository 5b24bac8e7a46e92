"""Text generation: sampling, streaming, stop strings, chat templates, context-window policy; scoring
continuations (`continuation_logprobs`)."""

from llmlab.generate.chat import ChatSession, ChatTemplate
from llmlab.generate.generate import Completion, GenerationConfig, PromptCache, complete, continuation_logprobs, stream

__all__ = ["ChatSession", "ChatTemplate", "Completion", "GenerationConfig", "PromptCache", "complete",
           "continuation_logprobs", "stream"]
