"""Classification on small reviews written for these tests, three methods, plus the CLI."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from llmlab.apps.classify import classify, evaluate
from llmlab.cli import main
from llmlab.errors import LlmlabError

POSITIVE = [
    "A wonderful, moving film with brilliant acting.", "I loved every minute of this movie.",
    "Funny, warm and beautifully shot.", "One of the best films of the year.",
    "A delightful story, highly recommended.",
    "The cast is superb and the script is clever.", "An inspiring and joyful experience.",
    "Gorgeous music and a touching ending.", "Smart, charming and full of heart.", "A triumph from start to finish.",
    "Great performances and a gripping plot.", "I would happily watch it again.",
]
NEGATIVE = [
    "A boring, tedious mess of a movie.", "I hated every minute of this film.", "Dull, lifeless and far too long.",
    "One of the worst films of the year.", "A stupid story, avoid it.", "The acting is wooden and the script is lazy.",
    "A depressing waste of two hours.", "Awful music and a pointless ending.", "Clumsy, cheap and empty.",
    "A disaster from start to finish.", "Terrible performances and a confusing plot.", "I want my money back.",
]
TEXTS = POSITIVE + NEGATIVE
LABELS = ["pos"] * len(POSITIVE) + ["neg"] * len(NEGATIVE)
DESCRIPTIONS = {"neg": "A negative movie review: the film is bad and boring.",
                "pos": "A positive movie review: the film is great and enjoyable."}


@pytest.fixture(scope="module")
def encoder():
    from llmlab.weights.registry import load_encoder

    return load_encoder("minilm")


def test_embeddings_method_learns_from_examples(encoder):
    train = list(range(0, 24, 2))  # half of each class to train on, the other half to test
    test = list(range(1, 24, 2))
    r = classify([TEXTS[i] for i in test], "embeddings", train_texts=[TEXTS[i] for i in train],
                 train_labels=[LABELS[i] for i in train], true_labels=[LABELS[i] for i in test], encoder=encoder)
    assert r.metrics.accuracy >= 0.8 and set(r.predicted) <= {"pos", "neg"}
    assert all(0.5 <= c <= 1 for c in r.confidence) and r.details["C"] in (0.3, 1.0, 3.0, 10.0)


@pytest.mark.parametrize("method", ["bow", "hybrid"])
def test_bow_and_hybrid_methods(encoder, method):
    train, test = list(range(0, 24, 2)), list(range(1, 24, 2))
    r = classify([TEXTS[i] for i in test], method, train_texts=[TEXTS[i] for i in train],
                 train_labels=[LABELS[i] for i in train], true_labels=[LABELS[i] for i in test], encoder=encoder)
    assert r.method == method and set(r.predicted) <= {"pos", "neg"} and r.details["features"] > 0
    if method == "hybrid":
        assert r.metrics.accuracy >= 0.8


def test_bow_learns_shared_words():
    train = ["good film", "good story and good cast", "really good", "bad film", "bad story, bad cast", "really bad"]
    r = classify(["a good plot", "such a bad plot"], "bow", train_texts=train, train_labels=["p"] * 3 + ["n"] * 3,
                 true_labels=["p", "n"])
    assert r.predicted == ["p", "n"] and r.details["features"] > 5


def test_zero_shot_needs_no_training(encoder):
    r = classify(TEXTS, "zero-shot", labels=DESCRIPTIONS, true_labels=LABELS, encoder=encoder)
    assert r.metrics.accuracy >= 0.85 and r.labels == ["neg", "pos"]


def test_generative_scores_each_label(smollm2_model):
    texts = [POSITIVE[0], POSITIVE[1], NEGATIVE[0], NEGATIVE[1]]
    question = "Is the sentiment of this movie review positive or negative?"
    r = classify(texts, "generative", labels={"positive": "positive", "negative": "negative"}, question=question,
                 true_labels=["positive", "positive", "negative", "negative"], decoder=smollm2_model)
    assert set(r.predicted) <= {"positive", "negative"} and r.metrics.accuracy >= 0.75
    assert all(0.5 <= c <= 1 for c in r.confidence)
    # Labels that are codes (a data set's 0 / 1) are answered with their descriptions: the same scores
    coded = classify(texts, "generative", labels={"1": "positive", "0": "negative"}, question=question,
                     decoder=smollm2_model)
    assert coded.predicted == [{"positive": "1", "negative": "0"}[p] for p in r.predicted]
    assert coded.confidence == pytest.approx(r.confidence, abs=1e-5)
    # two codes described alike would be one answer, a tie for every text: they answer as themselves
    alike = classify(texts[:2], "generative", labels={"0": "good", "1": "good"}, decoder=smollm2_model)
    assert alike.confidence != pytest.approx([0.5, 0.5], abs=1e-4)


def test_evaluate_counts():
    m = evaluate(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert m.accuracy == 0.75 and m.confusion == [[1, 1], [0, 2]]
    assert m.per_class["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    # a class predicted but never true counts with F1 0, as in the table and in scikit-learn
    from sklearn.metrics import f1_score

    true, predicted = ["a", "a", "a", "a"], ["a", "b", "a", "b"]
    m = evaluate(true, predicted, ["a", "b"])
    assert m.per_class["b"]["f1"] == 0 and m.macro_f1 == pytest.approx(f1_score(true, predicted, average="macro"))
    assert m.macro_f1 == pytest.approx((m.per_class["a"]["f1"] + 0) / 2)


def test_generative_reads_the_beginning_of_a_text_longer_than_the_context(smollm2_model):
    """A text past the context window (here SmolLM2 with its window set to 512, to stay quick) is cut to fit."""
    import copy
    import dataclasses

    short = copy.copy(smollm2_model)
    short.model = copy.copy(smollm2_model.model)  # the same weights
    short.model.config = dataclasses.replace(smollm2_model.model.config, max_seq_len=512)
    long = POSITIVE[0] + " " + "and so on " * 400  # ~1,200 tokens
    r = classify([long, NEGATIVE[0]], "generative", labels={"positive": "positive", "negative": "negative"},
                 decoder=short)
    assert r.details["cut_texts"] == 1 and set(r.predicted) <= {"positive", "negative"}


def test_cli_warns_when_true_labels_are_not_the_labels(tmp_path, capsys):
    write(tmp_path / "coded.csv", [(t, "1" if y == "pos" else "0") for t, y in zip(TEXTS, LABELS)])
    code = main(["classify", str(tmp_path / "coded.csv"), "--text-column", "text", "--label-column", "label",
                 "--method", "zero-shot", "--labels", "positive,negative", "--quiet", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["true_labels_not_predictable"] == ["0", "1"]
    assert "true label(s) '0', '1' of --label-column are not among the labels" in captured.err
    assert "--labels 0=" in captured.err
    main(["classify", str(tmp_path / "coded.csv"), "--text-column", "text", "--label-column", "label",
          "--method", "zero-shot", "--quiet"])  # the labels taken from the file: codes, which say nothing
    err = capsys.readouterr().err
    assert "not among the labels" not in err and "'0', '1' say nothing; describe them, e.g. --labels '0=" in err
    main(["classify", str(tmp_path / "coded.csv"), "--text-column", "text", "--label-column", "label",
          "--method", "zero-shot", "--quiet", "--labels", "0=a negative review,1=a positive review"])
    assert "warning" not in capsys.readouterr().err
    write(tmp_path / "gaps.csv", [(t, "" if i % 3 == 0 else y) for i, (t, y) in enumerate(zip(TEXTS, LABELS))])
    main(["classify", str(tmp_path / "gaps.csv"), "--text-column", "text", "--label-column", "label",
          "--method", "zero-shot", "--quiet", "--format", "json"])  # a blank label is not a label to predict
    assert json.loads(capsys.readouterr().out)["labels"] == ["neg", "pos"]


def test_argument_errors(encoder):
    with pytest.raises(LlmlabError, match="training texts"):
        classify(["x"], "embeddings", encoder=encoder)
    with pytest.raises(LlmlabError, match="at least two labels"):
        classify(["x"], "zero-shot", labels={"a": "a"}, encoder=encoder)
    with pytest.raises(LlmlabError, match="unknown method"):
        classify(["x"], "magic")


def write(path, rows, header=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_cli_writes_predictions_and_a_confusion_png(tmp_path, capsys):
    write(tmp_path / "train.csv", [(t, y) for t, y in zip(TEXTS[::2], LABELS[::2])])
    write(tmp_path / "test.csv", [(t, y) for t, y in zip(TEXTS[1::2], LABELS[1::2])])
    out = tmp_path / "pred.csv"
    code = main(["classify", str(tmp_path / "test.csv"), "--text-column", "text", "--label-column", "label",
                 "--train", str(tmp_path / "train.csv"), "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0 and "macro-F1" in printed and "trained on 12 labelled rows (C = " in printed
    assert "(always the most common true label: accuracy 0.5000)" in printed  # 6 pos, 6 neg
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert len(rows) == 12 and {"text", "label", "predicted_label", "confidence"} <= set(rows[0])
    assert (tmp_path / "pred.confusion.png").read_bytes()[:4] == b"\x89PNG"
    main(["classify", str(tmp_path / "test.csv"), "--text-column", "text", "--label-column", "label",
          "--train", str(tmp_path / "train.csv"), "--quiet", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["training"]["train_rows"] == 12 and doc["training"]["C"] in (0.3, 1.0, 3.0, 10.0)
    assert [p["row"] for p in doc["predictions"]] == list(range(12))
    assert [p["true_label"] for p in doc["predictions"]] == [r["label"] for r in rows]
    code = main(["classify", str(tmp_path / "test.csv"), "--text-column", "text", "--method", "zero-shot",
                 "--labels", "neg=" + DESCRIPTIONS["neg"] + ",pos=" + DESCRIPTIONS["pos"], "--format", "json",
                 "--quiet"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and len(doc["predictions"]) == 12 and doc["labels"] == ["neg", "pos"]


def test_cli_keeps_the_input_columns_it_would_collide_with(tmp_path, capsys):
    """A file that already has predicted_label / confidence columns keeps them; ours get a suffix."""
    from llmlab.apps.tables import added_columns

    assert added_columns(["a", "topic", "topic_2"], ["topic", "name"]) == ["topic_3", "name"]
    write(tmp_path / "train.csv", [(t, y) for t, y in zip(TEXTS[::2], LABELS[::2])])
    write(tmp_path / "test.csv", [(t, y, "theirs", "0.5") for t, y in zip(TEXTS[1::2], LABELS[1::2])],
          header=("text", "label", "predicted_label", "confidence"))
    out = tmp_path / "pred.csv"
    assert main(["classify", str(tmp_path / "test.csv"), "--text-column", "text", "--label-column", "label",
                 "--train", str(tmp_path / "train.csv"), "--out", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert list(rows[0]) == ["text", "label", "predicted_label", "confidence", "predicted_label_2", "confidence_2"]
    assert {r["predicted_label"] for r in rows} == {"theirs"}
    assert {r["predicted_label_2"] for r in rows} <= {"pos", "neg"}
    assert sum(r["predicted_label_2"] == r["label"] for r in rows) >= 10





def test_label_specs():
    from llmlab.cli import _parse_labels

    assert _parse_labels("neg,pos") == {"neg": "neg", "pos": "pos"}
    assert _parse_labels("0=A bad film: dull, long, boring.,1=A good film") == {
        "0": "A bad film: dull, long, boring.", "1": "A good film"}
    assert _parse_labels("other, 0=bad, sad,1=good") == {"other": "other", "0": "bad, sad", "1": "good"}
    with pytest.raises(LlmlabError, match="the label 'a' is given twice"):
        _parse_labels("a,b,a")
    with pytest.raises(LlmlabError, match="empty label name"):
        _parse_labels("a,,b")

def test_empty_texts_get_no_label():
    train = ["good film", "good story and good cast", "really good", "bad film", "bad story, bad cast", "really bad"]
    train_labels = ["p"] * 3 + ["n"] * 3
    texts, truth = ["a good plot", "", "such a bad plot", "  \n"], ["p", "n", "n", "p"]
    r = classify(texts, "bow", train_texts=train + ["", " "], train_labels=train_labels + ["n", "p"],
                 true_labels=truth)
    alone = classify([texts[0], texts[2]], "bow", train_texts=train, train_labels=train_labels,
                     true_labels=[truth[0], truth[2]])
    assert r.predicted == [alone.predicted[0], "", alone.predicted[1], ""] and r.predicted[0] == "p"
    assert r.confidence[1] == r.confidence[3] == 0.0 and r.confidence[0] == alone.confidence[0]
    assert r.metrics == alone.metrics and r.metrics.accuracy == 1.0  # blank rows are not scored
    assert r.details["empty_texts"] == 2 and r.probabilities[1].sum() == 0
    with pytest.raises(LlmlabError, match="all 2 texts are empty"):
        classify(["", " "], "bow", train_texts=train, train_labels=train_labels)
    # A blank label: the training row is dropped, the row to classify is predicted but not scored.
    r = classify(texts, "bow", train_texts=train + ["good grief"], train_labels=train_labels + [" "],
                 true_labels=["p", "n", "", "p"])
    assert r.predicted[:3] == [alone.predicted[0], "", alone.predicted[1]] and r.labels == ["n", "p"]
    assert r.metrics.accuracy == 1.0 and sum(v["support"] for v in r.metrics.per_class.values()) == 1
    assert r.details["unscored"] == 1

def test_cli_reads_csv_files_as_spreadsheets_save_them(tmp_path, capsys):
    """Excel's "CSV UTF-8" starts with a byte-order mark; its plain "CSV" on Windows is cp1252."""
    rows = [(t.replace("film", "café film"), y) for t, y in zip(TEXTS, LABELS)]
    body = "text,label\r\n" + "".join(f'"{t}",{y}\r\n' for t, y in rows)
    (tmp_path / "excel-utf8.csv").write_bytes(body.encode("utf-8-sig"))
    (tmp_path / "excel.csv").write_bytes(body.encode("cp1252"))
    args = ["--text-column", "text", "--label-column", "label", "--method", "bow", "--quiet"]
    out = tmp_path / "pred.csv"
    assert main(["classify", str(tmp_path / "excel-utf8.csv"), "--train", str(tmp_path / "excel-utf8.csv"),
                 "--out", str(out), *args]) == 0
    capsys.readouterr()
    # Written back with a byte-order mark too: without one, Excel reads UTF-8 as its code page.
    assert out.read_bytes().startswith(b"\xef\xbb\xbftext,label,predicted_label")
    assert [r["text"] for r in csv.DictReader(open(out, encoding="utf-8-sig"))] == [t for t, _ in rows]
    assert main(["classify", str(tmp_path / "excel.csv"), "--train", str(tmp_path / "excel-utf8.csv"), *args]) == 2
    err = capsys.readouterr().err
    assert "excel.csv: not valid UTF-8" in err and "--encoding NAME" in err and err.count("\n") == 1
    out.unlink()
    assert main(["classify", str(tmp_path / "excel.csv"), "--train", str(tmp_path / "excel.csv"),
                 "--encoding", "cp1252", "--out", str(out), *args]) == 0
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")
    assert [r["text"] for r in csv.DictReader(open(out, encoding="utf-8-sig"))] == [t for t, _ in rows]
    for name in ("utf-16", "utf-32"):  # Notepad's "Unicode": UTF-16 with a byte-order mark
        (tmp_path / f"{name}.csv").write_bytes(body.encode(name))
        assert main(["classify", str(tmp_path / f"{name}.csv"), "--train", str(tmp_path / "excel-utf8.csv"),
                     "--out", str(out), *args]) == 0
        assert out.read_bytes().startswith(b"\xef\xbb\xbftext,label,predicted_label")  # (was without the mark)
    (tmp_path / "plain.csv").write_bytes(body.encode("utf-8"))  # plain UTF-8 in, plain UTF-8 out
    assert main(["classify", str(tmp_path / "plain.csv"), "--train", str(tmp_path / "plain.csv"),
                 "--encoding", "cp1252", "--out", str(out), *args]) == 0
    assert out.read_bytes().startswith(b"text,label,predicted_label")
    with pytest.raises(SystemExit) as e:  # argparse checks the name before anything is read
        main(["classify", str(tmp_path / "excel.csv"), "--encoding", "klingon", *args])
    assert e.value.code == 2 and "unknown text encoding 'klingon'" in capsys.readouterr().err


def test_cli_other_delimiters(tmp_path, capsys):
    """Tab-separated files by their .tsv name; semicolons (Excel's CSV in many European languages) when asked."""
    rows = [(t.replace(",", ";"), y) for t, y in zip(TEXTS, LABELS)]
    (tmp_path / "reviews.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    (tmp_path / "reviews.csv").write_text("text;label\n" + "".join(f'"{t}";{y}\n' for t, y in rows), encoding="utf-8")
    args = ["--text-column", "text", "--label-column", "label", "--method", "bow", "--quiet"]
    out = tmp_path / "pred.tsv"
    tsv = str(tmp_path / "reviews.tsv")
    assert main(["classify", tsv, "--train", tsv, "--out", str(out), *args]) == 0
    written = list(csv.reader(open(out, encoding="utf-8", newline=""), delimiter="\t"))
    assert written[0] == ["text", "label", "predicted_label", "confidence"]
    assert [r[0] for r in written[1:]] == [t for t, _ in rows]
    semi = str(tmp_path / "reviews.csv")
    assert main(["classify", semi, "--train", tsv, *args]) == 2
    assert "looks semicolon-separated: --delimiter ';'" in capsys.readouterr().err
    out = tmp_path / "pred.csv"
    assert main(["classify", semi, "--train", tsv, "--delimiter", "tab", *args]) == 2  # --delimiter: every file
    capsys.readouterr()
    comma = tmp_path / "train.csv"  # a semicolon file to label, a comma training file: one separator each
    comma.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in zip(TEXTS, LABELS)), encoding="utf-8")
    assert main(["classify", semi, "--train", str(comma), "--delimiter", ";", *args]) == 2
    assert "looks comma-separated: --train-delimiter ','" in capsys.readouterr().err  # (it said --delimiter ',')
    assert main(["classify", semi, "--train", str(comma), "--delimiter", ";", "--train-delimiter", ",", *args]) == 0
    capsys.readouterr()
    assert main(["classify", semi, "--delimiter", ";", "--train-delimiter", ",", "--method", "zero-shot",
                 "--labels", "pos,neg", "--text-column", "text", "--quiet"]) == 2
    assert "--train-delimiter is the separator of --train" in capsys.readouterr().err
    assert main(["classify", semi, "--train", semi, "--delimiter", ";", "--out", str(out), *args]) == 0
    written = list(csv.reader(open(out, encoding="utf-8", newline=""), delimiter=";"))
    assert [r[0] for r in written[1:]] == [t for t, _ in rows] and len(written[1]) == 4

@pytest.mark.parametrize("content, args, message", [
    ("text,label\n", [], "no data rows"),
    ("", [], "file is empty"),
    ("text;label\ngood;pos\n", [], "looks semicolon-separated: --delimiter ';'"),
    ("review,label\ngood,pos\n", [], "no column 'text'"),
    ("Text ,label\ngood,pos\n", [], "no column 'text'; columns are 'Text ', 'label' (did you mean 'Text '?)"),
    ("text,label,text\ngood,pos,bad\n", [], "more than one column is named 'text'"),
    ("text,label\ngood,pos\n", [], "needs --train"),
    ('text,label\n"good, really,pos\nbad,neg\n', [], "malformed CSV (unexpected end of data)"),
    ("text,label\ngood,pos\n\ngood, really,pos\n", [], "line 4 has more fields than the header (3 for 2)"),
    ('text,label\n"' + "long " * 40_000 + '",pos\n', [], "needs --train"),  # a 200 kB cell is read
    ('text,label\n"good\nfilm",pos\ngood\n', ["--label-column", "label"], "line 4 has fewer fields"),
], ids=["header only", "empty", "semicolons", "missing column", "near miss", "named twice", "no train",
        "unclosed quote", "unquoted comma", "long cell", "short record"])
def test_cli_bad_files(tmp_path, capsys, content, args, message):
    (tmp_path / "in.csv").write_text(content, encoding="utf-8")
    code = main(["classify", str(tmp_path / "in.csv"), "--text-column", "text", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "pred.csv").exists()


def test_zero_shot_on_rotten_tomatoes_validation(shared_data, encoder):
    rows = list(csv.DictReader(open(shared_data / "rotten_tomatoes" / "validation.csv", encoding="utf-8")))
    descriptions = {"0": "A negative movie review: the film is bad, boring and disappointing.",
                    "1": "A positive movie review: the film is great, moving and enjoyable."}
    r = classify([x["text"] for x in rows], "zero-shot", labels=descriptions, true_labels=[x["label"] for x in rows],
                 encoder=encoder)
    assert len(rows) == 1066 and r.metrics.macro_f1 >= 0.70  # the bare labels reach only ~0.65


def test_zero_shot_labels_as_a_list(encoder):
    """A list of labels is a dict of labels each described by itself; integer labels are their digits."""
    as_list = classify(TEXTS[:4], "zero-shot", labels=["great film", "boring film"], encoder=encoder)
    as_dict = classify(TEXTS[:4], "zero-shot", labels={"great film": None, "boring film": ""}, encoder=encoder)
    assert as_list.predicted == as_dict.predicted and as_list.labels == ["great film", "boring film"]
    assert classify(TEXTS[:2], "zero-shot", labels={1: "a great film", 0: "a boring film"},
                    encoder=encoder).labels == ["1", "0"]


def test_cli_summary_of_many_labels_is_short(tmp_path, capsys):
    """77 intents were one line of 2,000 characters: the eight most predicted labels, then how many more."""
    labels = [f"intent_{i:02d}" for i in range(12)]
    train = [(f"please help with {name} number {k}", name) for name in labels for k in range(3)]
    write(tmp_path / "train.csv", train)
    write(tmp_path / "test.csv", train[::3])
    assert main(["classify", str(tmp_path / "test.csv"), "--text-column", "text", "--label-column", "label",
                 "--train", str(tmp_path / "train.csv"), "--method", "bow", "--quiet"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "texts; predicted" in x)
    assert line.endswith(", and 4 more labels") and line.count(": ") == 9 and len(line) < 250


def test_cli_shows_the_first_predictions_when_it_writes_none(tmp_path, capsys):
    """Without --out the terminal showed only counts: now the first 10 rows, with the true label."""
    rows = [(f"{'  great   film' if k % 2 else 'dull, boring film'} number {k}", "pos" if k % 2 else "neg")
            for k in range(12)]
    write(tmp_path / "test.csv", rows)
    write(tmp_path / "train.csv", rows * 2)
    assert main(["classify", str(tmp_path / "test.csv"), "--text-column", "text", "--label-column", "label",
                 "--train", str(tmp_path / "train.csv"), "--method", "bow", "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    head = next(i for i, x in enumerate(out) if x.split() == ["row", "predicted", "confidence", "true", "text"])
    shown = [x.split() for x in out[head + 1:head + 11]]
    assert [r[0] for r in shown] == [str(k) for k in range(10)]
    assert all(r[1] == r[3] == ("pos" if k % 2 else "neg") and 0.5 < float(r[2]) <= 1 for k, r in enumerate(shown))
    assert shown[1][4:] == ["great", "film", "number", "1"]  # spaces collapsed
    assert out[head + 11].startswith("… 2 more rows; --out FILE.csv writes every row")
    assert main(["classify", str(tmp_path / "test.csv"), "--text-column", "text", "--label-column", "label",
                 "--train", str(tmp_path / "train.csv"), "--method", "bow", "--quiet", "--out",
                 str(tmp_path / "p.csv")]) == 0
    assert "confidence  text" not in capsys.readouterr().out  # written: no sample


def test_cli_tables_line_up_chinese_labels_and_leave_out_escape_codes(tmp_path, capsys):
    """Columns are counted in terminal cells (a Chinese character takes two); control characters in a text
    (a terminal escape code) are not printed."""
    rows = [("很好的酒店，服务周到，房间干净，早餐丰富，下次还会再来。" * 3, "好评"),
            ("bad \x1b[31mred\x1b[0m hotel", "差评")]
    write(tmp_path / "test.csv", rows)
    write(tmp_path / "train.csv", rows * 4)
    assert main(["classify", str(tmp_path / "test.csv"), "--text-column", "text", "--label-column", "label",
                 "--train", str(tmp_path / "train.csv"), "--method", "bow", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "bad [31mred[0m hotel" in out
    table = [x for x in out.splitlines() if x.startswith(("label", "好评", "差评"))]

    def cells(line):  # terminal columns: the Chinese characters and full-width punctuation here take two
        return sum(2 if "\u4e00" <= c <= "\u9fff" or c in "，。" else 1 for c in line)

    assert len(table) == 3 and len({cells(x) for x in table}) == 1, table  # the numbers' columns line up
    row = next(x for x in out.splitlines() if x.startswith("    0  "))
    assert row.endswith("…") and cells(row.split("  ")[-1]) <= 70


@pytest.mark.parametrize("rows", [90, 2400])  # one process; parallel worker processes
def test_c_is_chosen_as_grid_search_chooses_it(rows):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from llmlab.apps.classify import C_GRID, _choose_c

    rng = np.random.default_rng(0)
    y = np.array(["a", "b", "c"] * (rows // 3))
    x = rng.normal(size=(rows, 20)) + 0.4 * (y[:, None] == np.array(["a", "b", "c"] * 7)[:20])
    grid = GridSearchCV(LogisticRegression(max_iter=3000), {"C": list(C_GRID)}, cv=3).fit(x, y)
    chosen, accuracy = _choose_c(x, y, 3, progress=False)
    assert (chosen, accuracy) == (grid.best_params_["C"], pytest.approx(grid.best_score_, abs=1e-12))


def test_cli_out_to_stdout_keeps_the_report_off_the_csv(tmp_path):
    """`--out /dev/stdout | next-tool`: the accuracy lines and table were printed into the CSV stream."""
    import subprocess
    import sys

    (tmp_path / "r.csv").write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in zip(TEXTS, LABELS)),
                                    encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "llmlab.cli", "classify", str(tmp_path / "r.csv"), "--text-column",
                          "text", "--label-column", "label", "--train", str(tmp_path / "r.csv"), "--method", "bow",
                          "--quiet", "--out", "/dev/stdout"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(run.stdout.splitlines()))
    assert [r["text"] for r in rows] == TEXTS and all(r["predicted_label"] in ("pos", "neg") for r in rows)
    assert "accuracy" in run.stderr and "predictions written to /dev/stdout" in run.stderr
    cmd = [sys.executable, "-m", "llmlab.cli", "classify", str(tmp_path / "r.csv"), "--text-column", "text",
           "--label-column", "label", "--train", str(tmp_path / "r.csv"), "--method", "bow", "--quiet"]
    pred = tmp_path / "pred.csv"
    with open(pred, "w") as shell_out:  # `--out pred.csv > pred.csv`: the report was lost with the replaced file
        run = subprocess.run([*cmd, "--out", str(pred)], stdout=shell_out, stderr=subprocess.PIPE, text=True,
                             timeout=300)
    assert run.returncode == 0 and "accuracy" in run.stderr and pred.read_text().startswith("text,label,predicted")
    with open(tmp_path / "shell.csv", "w") as shell_out:  # `--out /dev/stdout > shell.csv`: no PNG in /dev
        run = subprocess.run([*cmd, "--out", "/dev/stdout"], stdout=shell_out, stderr=subprocess.PIPE, text=True,
                             timeout=300)
    assert run.returncode == 0 and "confusion matrix" not in run.stderr
    assert not Path("/dev/stdout.confusion.png").exists() and not Path("/dev/stdout.confusion.png").is_symlink()
    assert len(list(csv.DictReader(open(tmp_path / "shell.csv")))) == len(TEXTS)
    run = subprocess.run(["sh", "-c", '"$@" >&-', "sh", *cmd, "--out", str(pred)], capture_output=True, text=True,
                         timeout=300)  # standard output closed
    assert run.returncode in (0, 120) and "Traceback" not in run.stderr, run.stderr


def test_generative_scores_are_calibrated_by_a_content_free_text(smollm2_model):
    """Each label's score is log P(label, end of turn | prompt) minus the same for the text "N/A"
    (Zhao et al. 2021), worked out here with continuation_logprobs on the fp32 model, without the
    shared prefix cache; the prediction is the best calibrated score, the confidence its softmax."""
    import torch

    from llmlab.generate import ChatTemplate, continuation_logprobs

    names = ["positive", "negative", "neutral"]
    texts = [POSITIVE[0], NEGATIVE[0], "The film is ninety minutes long and in colour."]
    tok = smollm2_model.tokenizer
    template = ChatTemplate(smollm2_model.chat_template, tok.bos_token or "", tok.eos_token or "")
    question = "Which label fits this text: positive, negative or neutral?"  # the default: labels, no descriptions
    end = tok.special_tokens["<|im_end|>"]
    options = [tok.encode(n, special=False) + [end] for n in names]

    def scores(text):
        ids = tok.encode(template.render([{"role": "user", "content": f"{question}\n\nText: {text}"}]))
        return continuation_logprobs(smollm2_model.model, ids, options)

    raw = torch.stack([scores(t) for t in texts])  # (texts, labels)
    calibrated = raw - scores("N/A")
    r = classify(texts, "generative", labels=names, decoder=smollm2_model)
    assert r.labels == names
    assert r.predicted == [names[i] for i in calibrated.argmax(dim=1).tolist()]
    assert r.confidence == pytest.approx(calibrated.softmax(dim=1).max(dim=1).values.tolist(), abs=1e-4)
    # the calibration matters here: without it the confidences are not these
    assert raw.softmax(dim=1).max(dim=1).values.tolist() != pytest.approx(r.confidence, abs=1e-3)


def test_generative_keeps_the_beginning_of_a_text_longer_than_the_context(smollm2_model, monkeypatch):
    """The prompt of a text past the (here shortened) context window holds its opening words, not its tail."""
    import copy
    import dataclasses

    import torch

    import llmlab.generate

    short = copy.copy(smollm2_model)
    short.model = copy.copy(smollm2_model.model)  # the same weights
    short.model.config = dataclasses.replace(smollm2_model.model.config, max_seq_len=512)
    long = "Zebras paint the lighthouse purple. " + "and so on " * 400 + "Finally the walrus sings opera."
    prompts = []

    def spy(model, prompt_ids, options, *args, **kwargs):  # records the prompt; the scores do not matter here
        prompts.append(list(prompt_ids))
        return torch.zeros(len(options))

    monkeypatch.setattr(llmlab.generate, "continuation_logprobs", spy)
    r = classify([long], "generative", labels=["positive", "negative"], decoder=short)
    assert r.details["cut_texts"] == 1
    blank, cut = prompts  # the "N/A" prompt first, then the text's
    shown = short.tokenizer.decode(cut)
    assert "N/A" in short.tokenizer.decode(blank) and len(cut) <= 512
    assert "Zebras paint the lighthouse purple. and so on" in shown
    assert "walrus" not in shown and "opera" not in shown
    assert shown.count("and so on") > 100  # the text fills the window, not a few words of it
