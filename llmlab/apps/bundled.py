"""The bundled models as the apps load them when the caller gives none: once per process.

A script that calls `ask` or `classify` in a loop would otherwise read SmolLM2 (~20 s) or MiniLM
(~2 s) from disk on every call. The apps only read these models (eval mode, no state kept
between calls; `float_weights` holds dequantized weights while a job runs, and any number of jobs
may hold them at once), so one copy serves them all.
"""

from functools import cache


@cache
def sentence_encoder():
    """all-MiniLM-L6-v2 in float32."""
    from llmlab.weights.registry import load_encoder

    return load_encoder("minilm")


@cache
def chat_decoder():
    """SmolLM2-135M-Instruct at int4 (as `llmlab chat` runs it)."""
    from llmlab.weights.registry import load_decoder

    return load_decoder("smollm2", precision="int4")
