"""Runnable reproductions of the primer's claims, each writing a report with tables and plots.

`EXPERIMENTS` maps a name to its module and the one-line claim it tests; `available()` lists the
ones whose module exists (an entry can be registered before its module is written). Every module
has ``run(quick: bool, seed: int) -> Report``; `run_experiment` runs one and writes
``DIR/report.md`` and its PNG figures atomically. ``quick`` versions use only text written in the
package and run in the test suite; full versions read ../shared/data and say which data set is
missing when one is.
Tests: tests/experiments/test_experiments.py (each quick version asserts the direction of its effect).
"""

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.experiments.common import Report, write_report


@dataclass(frozen=True)
class Experiment:
    module: str
    claim: str


EXPERIMENTS: dict[str, Experiment] = {
    "tokenization": Experiment(
        "llmlab.experiments.tokenization",
        "tokenizers cut the same text very differently: spaces fail Mandarin, characters give the most tokens, "
        "byte-level BPE spends more tokens per character outside English"),
    "static-vs-contextual": Experiment(
        "llmlab.experiments.static_vs_contextual",
        "a static word2vec vector is the same in every sentence; contextual (MiniLM) token vectors "
        "separate the senses of an ambiguous word"),
    "bow-vs-embeddings": Experiment(
        "llmlab.experiments.bow_vs_embeddings",
        "sentence embeddings capture meaning that word overlap misses: paraphrases with no shared word, "
        "and higher correlation with human similarity judgements (STS-B)"),
    "context-window": Experiment(
        "llmlab.experiments.context_window",
        "a chat model sees a bounded window: as a conversation outgrows it, the oldest turns are dropped "
        "while the system prompt stays"),
    "rnn-vs-attention": Experiment(
        "llmlab.experiments.rnn_vs_attention",
        "attention over every encoder state beats a fixed-size RNN summary as sequences get longer"),
}


def available() -> dict[str, Experiment]:
    """The registered experiments whose module exists, in registry order."""
    return {name: e for name, e in EXPERIMENTS.items() if importlib.util.find_spec(e.module) is not None}


def run_experiment(name: str, out: str | Path | None = None, quick: bool = False, seed: int = 0) -> Report:
    """Run experiment ``name``; with ``out``, write out/report.md and the figures there."""
    experiments = available()
    if name not in experiments:
        raise LlmlabError(f"unknown experiment '{name}' (known: {', '.join(experiments)})")
    report = importlib.import_module(experiments[name].module).run(quick=quick, seed=seed)
    if out is not None:
        write_report(report, out)
    return report


__all__ = ["EXPERIMENTS", "Experiment", "Report", "available", "run_experiment", "write_report"]
