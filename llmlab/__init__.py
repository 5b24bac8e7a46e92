"""llmlab: language AI you can read, run and use.

From text to tokens, tokens to meaning, sequence models and transformers, to the
applications people build with them, written from scratch in readable PyTorch and
checked against the reference libraries on real weights and real data.
"""

__version__ = "0.1.0"
