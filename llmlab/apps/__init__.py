"""What people do with language models, as plain functions on their own data.

Each app takes plain Python inputs and returns a plain result object; the CLI formats it
for a terminal and the server will return it as JSON.
"""

from llmlab.apps.ask import Answer, ask
from llmlab.apps.classify import Classification, classify
from llmlab.apps.inspect import Inspection, inspect
from llmlab.apps.topics import Topic, Topics, topics

__all__ = ["Answer", "ask", "Classification", "classify", "Inspection", "inspect", "Topic", "Topics", "topics"]
