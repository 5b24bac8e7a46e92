"""Text generation: sampling, streaming, stop strings, chat templates, context-window policy."""

from llmlab.generate.chat import ChatSession, ChatTemplate
from llmlab.generate.generate import Completion, GenerationConfig, PromptCache, complete, stream

__all__ = ["ChatSession", "ChatTemplate", "Completion", "GenerationConfig", "PromptCache", "complete", "stream"]
