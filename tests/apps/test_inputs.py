"""Texts and labels as a notebook hands them over (llmlab.apps.inputs), and classify taking them."""

import numpy as np
import pytest

from llmlab.apps.classify import classify
from llmlab.apps.inputs import label_list, text_list
from llmlab.errors import LlmlabError

TRAIN = ["good film", "good story and good cast", "really good", "bad film", "bad story, bad cast", "really bad"]


def test_text_list_takes_any_sequence_and_empty_cells():
    assert text_list(("a", "b")) == text_list(t for t in "ab") == text_list(np.array(["a", "b"])) == ["a", "b"]
    assert all(type(t) is str for t in text_list(np.array(["a", "b"])))
    assert text_list(["a", None, float("nan"), np.float32("nan")]) == ["a", "", "", ""]
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"text": ["x", "y", None]}, index=[7, 3, 9])
    assert text_list(frame.text[frame.index > 4]) == ["x", ""]
    assert text_list(pd.Series(["x", pd.NA], dtype="string")) == ["x", ""]


@pytest.mark.parametrize("bad, message", [
    ("one review", "got one str: wrap it in a list"), (b"bytes", "got one bytes"), (5, "not int"),
    (["ok", 3], r"texts\[1\] is int"), (["ok", ["nested"]], r"texts\[1\] is list"),
    (np.array([["a", "b"]]), "not a ndarray of 2 dimensions"), ({"a": 1}, "not a dict"),
])
def test_text_list_refuses(bad, message):
    with pytest.raises(LlmlabError, match=message):
        text_list(bad)


def test_label_list_names_labels():
    assert label_list([1, 0, np.int64(2), 3.0, " pos ", None, float("nan"), True, 0.5]) == \
        ["1", "0", "2", "3", "pos", "", "", "True", "0.5"]
    assert label_list([np.float32(0.1), np.bool_(False)]) == ["0.1", "False"]
    assert label_list(np.array([0.1, 0.25], dtype=np.float32)) == label_list([0.1, 0.25])
    pd = pytest.importorskip("pandas")
    assert label_list(pd.Series([1, None, 0])) == ["1", "", "0"]  # an int column with a gap is float
    frame = pd.DataFrame({"text": ["a", "b"], "label": [0, 1]})
    with pytest.raises(LlmlabError, match="not a DataFrame of 2 dimensions"):  # not its column names
        text_list(frame[["text"]])


def test_classify_takes_what_a_notebook_has():
    expected = classify(["a good plot", "such a bad plot"], "bow", train_texts=TRAIN,
                        train_labels=["1", "1", "1", "0", "0", "0"], true_labels=["1", "0"])
    r = classify(np.array(["a good plot", "such a bad plot"]), "bow", train_texts=tuple(TRAIN),
                 train_labels=np.array([1, 1, 1, 0, 0, 0]), true_labels=[1, 0])
    assert r.predicted == expected.predicted == ["1", "0"] and r.metrics == expected.metrics
    r = classify(["a good plot", None, "such a bad plot"], "bow", train_texts=TRAIN,
                 train_labels=["1 ", "1", "1", "0", " 0", "0"])  # spaces around a label do not make a class
    assert r.predicted == ["1", "", "0"] and r.labels == ["0", "1"]


@pytest.mark.parametrize("kwargs, message", [
    ({"train_labels": ["p", "p", "p", "n", "n"]}, "6 training texts but 5 training labels"),
    ({"train_texts": TRAIN + ["good"]}, "7 training texts but 6 training labels"),
    ({"true_labels": ["p"]}, "2 texts but 1 true labels"),
    ({"true_labels": ["p", "n", "n"]}, "2 texts but 3 true labels"),
])
def test_classify_refuses_lengths_that_do_not_match(kwargs, message):
    args = {"train_texts": TRAIN, "train_labels": ["p"] * 3 + ["n"] * 3, **kwargs}
    with pytest.raises(LlmlabError, match=message):
        classify(["a good plot", "such a bad plot"], "bow", **args)


def test_classify_label_lists_and_refusals():
    with pytest.raises(LlmlabError, match="wrap it in a list"):
        classify("a good plot", "bow", train_texts=TRAIN, train_labels=["p"] * 3 + ["n"] * 3)
    with pytest.raises(LlmlabError, match="given twice"):
        classify(["x"], "zero-shot", labels=["pos", "neg", "pos"])
    with pytest.raises(LlmlabError, match="blank"):
        classify(["x"], "zero-shot", labels={"pos": "good", " ": "bad"})
    with pytest.raises(LlmlabError, match="description of label 'neg' is int"):
        classify(["x"], "zero-shot", labels={"pos": "good", "neg": 0})
