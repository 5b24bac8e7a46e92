"""What every experiment shares: the `Report`, the setup block, tables, PNG figures, data and vectors.

A report states its setup (data, sizes, seeds, hardware) beside the numbers, so a figure can be
traced to the run that made it. Figures are drawn with matplotlib's object API (``Figure`` +
Agg canvas; no pyplot, no global backend switch) straight into PNG bytes; `write_report` writes
them and ``report.md`` atomically.
Tests: tests/experiments/test_experiments.py.
"""

import io
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.fileio import atomic_write_bytes, atomic_write_text

REPO = Path(__file__).resolve().parents[2]
# the development data sets (../shared/data beside the repository); LLMLAB_DATA points elsewhere
DATA = Path(os.environ.get("LLMLAB_DATA") or REPO.parent / "shared" / "data")


@dataclass
class Report:
    name: str
    claim: str
    headline: dict  # the few figures printed on the terminal: {label: number or text}
    markdown: str  # the body of report.md
    figures: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG bytes
    checks: dict = field(default_factory=dict)  # the measured directions of the claim, for tests and JSON


def write_report(report: Report, out: str | Path) -> Path:
    """DIR/report.md and DIR/<figure>.png, each written atomically; returns the report path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LlmlabError(f"--out {out}: exists and is not a folder")
    for filename, png in report.figures.items():
        atomic_write_bytes(out / filename, png)
    return atomic_write_text(out / "report.md", report.markdown)


def data_path(*parts: str, what: str) -> Path:
    """A file or folder of the development data sets, or a one-line error naming what is missing."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        raise LlmlabError(f"the full experiment needs {what} at {path}, which is absent "
                          f"(set LLMLAB_DATA to the data folder, or run with --quick)")
    return path


# --- the setup block -----------------------------------------------------------------------
def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hardware() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return (f"{platform.platform()}, {cpu}, {os.cpu_count()} cores visible, torch {torch.__version__} "
            f"with {torch.get_num_threads()} threads, Python {platform.python_version()}")


def setup_block(name: str, quick: bool, seed: int, lines: list[str]) -> str:
    """The '## Setup' section: command, commit, hardware, then the experiment's own lines."""
    command = f"llmlab experiment {name}{' --quick' if quick else ''} --seed {seed}"
    rows = [f"- command: `{command}` (commit {_commit()})", f"- hardware: {hardware()}"]
    rows += [f"- {line}" for line in lines]
    return "## Setup\n\n" + "\n".join(rows) + "\n"


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats with 3 decimals, `|` in cells escaped."""
    def cell(v) -> str:
        text = f"{v:.3f}" if isinstance(v, float) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --- figures ----------------------------------------------------------------------------------
def new_figure(width: float = 8.0, height: float = 4.5):
    """A matplotlib Figure on the Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


# --- word2vec vectors shared by static-vs-contextual and bow-vs-embeddings --------------------------
@cache
def word2vec_vectors(quick: bool, seed: int):
    """(KeyedVectors, description) trained in this process and kept for the next experiment.

    Quick: skip-gram on the English text written in this package (a few thousand words, min_count 1,
    40 epochs). Full: skip-gram with the defaults (100 dims, window 5, 5 epochs, min_count 5) and
    2 threads on ../shared/data/corpus_en."""
    from llmlab.embed.word2vec import Word2VecConfig, corpus_files, train_word2vec

    if quick:
        from llmlab.experiments.texts import english_text

        cfg = Word2VecConfig(dim=50, min_count=1, epochs=40, seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "english.txt"
            path.write_text(english_text(), encoding="utf-8")
            model = train_word2vec([path], cfg, progress=False)
        corpus = "the English sentences written in llmlab/experiments (texts.english_text)"
    else:
        cfg = Word2VecConfig(threads=2, seed=seed)
        files = corpus_files([data_path("corpus_en", what="the English corpus (corpus_en)")])
        model = train_word2vec(files, cfg, progress=sys.stderr.isatty())
        corpus = f"../shared/data/corpus_en ({len(files)} files)"
    s = model.stats
    text = (f"word2vec skip-gram, {cfg.dim} dims, window {cfg.window}, {cfg.negative} negatives, min_count "
            f"{cfg.min_count}, {cfg.epochs} epochs, seed {seed}, {cfg.threads} thread(s), trained here on {corpus}: "
            f"{s['corpus_words']:,} words, vocabulary {s['vocab_size']:,}, {s['seconds']:.1f} s")
    return model.wv, text


@cache
def minilm():
    """The MiniLM sentence encoder in float32, loaded once per process."""
    from llmlab.weights.registry import load_encoder

    return load_encoder("minilm")
