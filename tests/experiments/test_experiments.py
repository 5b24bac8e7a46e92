"""The quick experiments: each runs once (seed 0, no data sets) and shows the direction of its claim.

Models are loaded once per process (llmlab.experiments.common caches MiniLM and the quick word2vec
vectors), so the file runs in well under a minute on two cores.
"""

import json

import numpy as np
import pytest

from llmlab.cli import main
from llmlab.experiments import EXPERIMENTS, Report, available, run_experiment


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict:
    """name -> (Report, out folder), each quick experiment run once (rnn-vs-attention has its own
    test file, which runs it)."""
    out = tmp_path_factory.mktemp("experiments")
    return {name: (run_experiment(name, out / name, quick=True, seed=0), out / name)
            for name in available() if name != "rnn-vs-attention"}


def test_registry_lists_only_experiments_whose_module_exists():
    names = list(available())
    assert names == ["tokenization", "static-vs-contextual", "bow-vs-embeddings", "context-window",
                     "rnn-vs-attention"]
    assert all(EXPERIMENTS[n].claim for n in names)


def test_reports_and_figures_are_written(reports):
    for name, (report, out) in reports.items():
        assert isinstance(report, Report) and report.name == name
        text = (out / "report.md").read_text(encoding="utf-8")
        assert text == report.markdown and "## Setup" in text and "cores visible" in text
        assert report.figures, name
        for filename, data in report.figures.items():
            assert data.startswith(b"\x89PNG") and (out / filename).read_bytes() == data
            assert f"]({filename})" in text  # every figure is shown in the report


def test_tokenization(reports):
    c = reports["tokenization"][0].checks
    assert c["whitespace_mandarin_tokens"] == 1  # no spaces: the whole sentence is one token
    assert c["char_most_english"] and c["char_most_code"]
    assert c["wordpiece_cjk_per_char"]
    assert c["smollm2_tokens_per_char_zh"] > 2 * c["smollm2_tokens_per_char_en"]


def test_static_vs_contextual(reports):
    c = reports["static-vs-contextual"][0].checks
    assert all(c["static_identical"].values())  # word2vec: exactly the same vector in every sentence
    assert set(c["accuracy"]) == {"bank", "bat", "bark"}
    assert min(c["accuracy"].values()) >= 0.75  # chance is 0.5


def test_static_vectors_are_exactly_equal():
    from llmlab.experiments.common import word2vec_vectors
    from llmlab.experiments.static_vs_contextual import static_vector
    from llmlab.experiments.texts import SENSES

    kv, _ = word2vec_vectors(True, 0)
    for word, senses in SENSES.items():
        vectors = [static_vector(kv, s, word) for group in senses.values() for s in group]
        assert all(np.array_equal(vectors[0], v) for v in vectors)


def test_bow_vs_embeddings(reports):
    c = reports["bow-vs-embeddings"][0].checks
    assert c["paraphrase_bow_max"] < 0.05  # no shared word: (almost) nothing for a bag of words to match
    assert c["paraphrase_minilm_min"] > 0.5
    assert c["graded_spearman"]["MiniLM"] > c["graded_spearman"]["bag of words"]


def test_context_window(reports):
    c = reports["context-window"][0].checks
    assert c["max_total_tokens"] <= c["context"] == 1024
    assert c["oldest_first"] and c["system_always_kept"]
    assert c["first_drop_turn"] is not None and c["turns_dropped"] > 0


def test_cli_list(capsys):
    assert main(["experiment", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(available())


def test_cli_json(tmp_path, capsys):
    assert main(["experiment", "context-window", "--quick", "--out", str(tmp_path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["name"] == "context-window" and doc["quick"] and doc["headline"]["context window"] == 1024
    assert (tmp_path / "report.md").is_file() and (tmp_path / "context.png").is_file()


def test_cli_unknown_name_is_one_error_line(capsys):
    assert main(["experiment", "no-such-experiment"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("llmlab: error: unknown experiment 'no-such-experiment'")


def test_cli_needs_a_name(capsys):
    assert main(["experiment"]) == 2
    assert "--list" in capsys.readouterr().err


def test_full_version_names_missing_data(monkeypatch, tmp_path):
    from llmlab.errors import LlmlabError
    from llmlab.experiments import common

    monkeypatch.setattr(common, "DATA", tmp_path)
    with pytest.raises(LlmlabError, match="tiny shakespeare"):
        run_experiment("tokenization", quick=False)
