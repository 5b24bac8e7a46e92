"""What people do with language models, as plain functions on their own data.

Each app takes plain Python inputs and returns a plain result object; the CLI formats it
for a terminal and the server will return it as JSON.
"""

from llmlab.apps.ask import Answer, ask
from llmlab.apps.classify import Classification, classify
from llmlab.apps.inspect import Inspection, inspect
from llmlab.apps.search import Hit, Index, IndexReport, index_files, search_index
from llmlab.apps.topics import Topic, Topics, topics

__all__ = ["Answer", "ask", "Classification", "classify", "Hit", "Index", "IndexReport", "index_files", "Inspection",
           "inspect", "search_index", "Topic", "Topics", "topics"]
