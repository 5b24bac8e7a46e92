"""What people do with language models, as plain functions on their own data.

Each app takes plain Python inputs and returns a plain result object; the CLI formats it
for a terminal and the server will return it as JSON.
"""

from llmlab.apps.classify import Classification, classify

__all__ = ["Classification", "classify"]
