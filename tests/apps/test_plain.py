"""Results as plain JSON values: the helper, and every app result's to_dict() on real runs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from llmlab.apps.ask import Answer, Source
from llmlab.apps.classify import classify
from llmlab.apps.search import Hit
from llmlab.plain import plain, rounded


def test_plain_values():
    value = {"f": np.float32(0.25), "i": np.int64(3), "b": np.bool_(True), "a": np.arange(3), "t": (1, 2.5),
             "nan": float("nan"), "inf": np.float64("inf"), "path": Path("a/b.txt"), 7: torch.tensor([[1.5]]),
             "nested": [{"x": np.float16(2)}], "none": None, "text": "é"}
    out = plain(value)
    assert out == {"f": 0.25, "i": 3, "b": True, "a": [0, 1, 2], "t": [1, 2.5], "nan": None, "inf": None,
                   "path": "a/b.txt", "7": [[1.5]], "nested": [{"x": 2.0}], "none": None, "text": "é"}
    assert [type(out[k]) for k in ("f", "i", "b")] == [float, int, bool]
    json.dumps(out, allow_nan=False)
    with pytest.raises(TypeError, match="no plain JSON form for object"):
        plain({"x": object()})
    assert rounded(np.float32(0.123456)) == 0.1235 and rounded(float("nan")) is None


def test_classification_to_dict():
    train = ["good film", "good story and good cast", "really good", "bad film", "bad story, bad cast", "really bad"]
    r = classify(["a good plot", "", "such a bad plot"], "bow", train_texts=train, train_labels=["p"] * 3 + ["n"] * 3,
                 true_labels=["p", "n", ""])
    doc = json.loads(json.dumps(r.to_dict(probabilities=True), allow_nan=False))
    assert doc["method"] == "bow" and doc["labels"] == ["n", "p"] and doc["empty_texts"] == 1
    assert doc["unscored"] == 1 and doc["training"]["train_rows"] == 6 and doc["model"] is None
    first, empty, last = doc["predictions"]
    assert (first["row"], first["predicted_label"], first["true_label"]) == (0, "p", "p")
    assert (empty["predicted_label"], empty["confidence"], empty["true_label"]) == (None, None, "n")
    assert "probabilities" not in empty and last["true_label"] is None and last["predicted_label"] == "n"
    assert sum(first["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    assert first["confidence"] == max(first["probabilities"].values())
    assert doc["metrics"]["accuracy"] == 1.0 and doc["metrics"]["confusion"] == [[0, 0], [0, 1]]
    assert "probabilities" not in r.to_dict()["predictions"][0]
    # without true labels there is no true_label and no metrics
    doc = classify(["a good plot"], "bow", train_texts=train, train_labels=["p"] * 3 + ["n"] * 3).to_dict()
    assert "true_label" not in doc["predictions"][0] and "metrics" not in doc


def test_answer_and_hit_to_dict():
    source = Source(1, "notes/a.txt", 0, np.float32(0.5), "The sky is blue.")
    a = Answer("What colour is the sky?", "Blue [1].", [1], [source], relevance=np.float32(0.71234),
               prompt_tokens=40, finish_reason="eos")
    doc = json.loads(json.dumps(a.to_dict(), allow_nan=False))
    assert doc["relevance"] == 0.7123 and doc["sources"] == [{"n": 1, "path": "notes/a.txt", "chunk": 0,
                                                               "score": 0.5, "text": "The sky is blue.",
                                                               "trimmed": False, "also": []}]
    assert (doc["citations"], doc["invalid_citations"], doc["finish_reason"]) == ([1], [], "eos")
    assert Hit("a.txt", 2, np.float64(1.25), "x").to_dict() == {"path": "a.txt", "chunk": 2, "score": 1.25,
                                                                 "text": "x", "also": []}
    copied = Hit("a.txt", 2, 1.0, "x", [{"path": "b.txt", "chunk": 0}]).to_dict()
    assert json.loads(json.dumps(copied))["also"] == [{"path": "b.txt", "chunk": 0}]
