"""Errors a user can act on.

Every failure caused by input (a file, a name, an argument) is raised as an
``LlmlabError`` with a message that names the problem. The CLI prints that message
on one line and exits non-zero; nothing else is expected to catch it.
"""


class LlmlabError(Exception):
    """A problem with the user's input, described in one readable line."""


class TokenizerError(LlmlabError):
    """A tokenizer could not be found, read or applied."""


class EncodingError(LlmlabError):
    """A text file's bytes are not valid in the encoding it was read with.

    ``suggestion``: an encoding the bytes look like, when there is a good guess."""

    def __init__(self, message: str, suggestion: str | None = None):
        super().__init__(message)
        self.suggestion = suggestion
