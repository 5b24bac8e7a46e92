"""The `llmlab` command: tokenize, compare, train, and one-line errors for bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmlab.cli import main
from llmlab.packages import smollm2_gguf
from llmlab.tokenize import load_tokenizer
from tests.conftest import TEST_DATA

MANDARIN = "我喜欢自然语言处理"


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_compare_mandarin_shows_the_primers_point(capsys):
    code, out, _ = run(capsys, "tokenize", "--compare", "--format", "json", MANDARIN)
    assert code == 0
    counts = {t["tokenizer"]: t["count"] for t in json.loads(out)["tokenizers"]}
    assert counts["whitespace"] == 1 and counts["word"] == 1  # the whole sentence is one token
    assert counts["char"] == 9
    assert counts["smollm2"] > 1
    assert counts["minilm"] == 9 + 2  # one token per character, plus [CLS] and [SEP]
    code, out, _ = run(capsys, "tokenize", "--compare", MANDARIN)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["tokenizer", "kind", "tokens"]
    assert any(line.split()[:3] == ["whitespace", "whitespace", "1"] for line in lines)


def test_json_ids_are_encode_of_the_file_byte_for_byte(capsys, tmp_path):
    text = "  First line,\r\nsecond\tline with 12 digits<|im_end|>\n\n"
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode("utf-8"))
    for name in ("smollm2", "minilm"):
        code, out, _ = run(capsys, "tokenize", "--tokenizer", name, "--format", "json", "-f", str(path))
        doc = json.loads(out)
        tok = load_tokenizer(name)
        assert code == 0 and doc["tokenizer"] == name
        assert doc["ids"] == tok.encode(text) and doc["tokens"] == [tok.id_to_token(i) for i in doc["ids"]]
    assert doc["ids"][0] == 101 and doc["ids"][-1] == 102  # WordPiece: [CLS] ... [SEP]
    code, out, _ = run(capsys, "tokenize", "--format", "json", "-f", str(path))
    assert json.loads(out)["ids"][0] != 1  # SmolLM2 adds no BOS



def test_files_in_other_encodings(capsys, tmp_path):
    text = "Mandarin: 我喜欢自然语言处理\n"
    (tmp_path / "gbk.txt").write_bytes(text.encode("gbk"))
    code, out, err = run(capsys, "tokenize", "--format", "json", "-f", str(tmp_path / "gbk.txt"))
    assert code == 2 and "not valid UTF-8" in err and "or name its encoding: --encoding NAME" in err
    code, out, _ = run(capsys, "tokenize", "--format", "json", "--encoding", "gbk", "-f", str(tmp_path / "gbk.txt"))
    assert code == 0 and json.loads(out)["ids"] == load_tokenizer("smollm2").encode(text)
    # Commands without --encoding do not suggest it.
    code, _, err = run(capsys, "tokenizer", "train", "--vocab-size", "300", "--out", str(tmp_path / "o"),
                       str(tmp_path / "gbk.txt"))
    assert code == 2 and "not valid UTF-8" in err and "--encoding" not in err

def test_text_output_shows_pieces_and_ids(capsys):
    code, out, _ = run(capsys, "tokenize", "Hello  world")
    assert code == 0
    assert out.splitlines()[0] == "smollm2 (bpe): 3 tokens"  # "Hello", " ", " world"
    assert "|Hello|·|·world|" in out and out.splitlines()[-1].startswith("ids: ")


def test_colour_and_plain_special_tokens(capsys):
    code, out, _ = run(capsys, "tokenize", "--color", "always", "a b")
    assert code == 0 and "\x1b[" in out and "|" not in out.splitlines()[1]
    code, out, _ = run(capsys, "tokenize", "--format", "json", "--no-special", "<|im_end|>")
    ids = json.loads(out)["ids"]
    assert code == 0 and len(ids) > 1 and 2 not in ids
    code, out, _ = run(capsys, "tokenize", "--format", "json", "<|im_end|>")
    assert json.loads(out)["ids"] == [2]


def test_train_then_load_by_path(capsys, tmp_path):
    code, out, _ = run(capsys, "tokenizer", "train", "--vocab-size", "400", "--out", str(tmp_path / "tok"),
                       "--quiet", "--format", "json", str(TEST_DATA / "sample_en.txt"))
    assert code == 0 and json.loads(out)["vocab_size"] == 400
    code, out, _ = run(capsys, "tokenize", "--tokenizer", str(tmp_path / "tok"), "--format", "json", "First Citizen")
    assert code == 0 and len(json.loads(out)["ids"]) < len("First Citizen")


@pytest.fixture
def bad_files(tmp_path):
    files = {
        "latin1": b"caf\xe9 au lait\n",
        "binary": b"\x7fELF\x00\x01\x02\x00" * 8,
        "empty": b"",
        "bad.json": b"{ nope",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    cut = tmp_path / "cut.gguf"
    with open(smollm2_gguf(), "rb") as f:
        cut.write_bytes(f.read(100_000))
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["tokenize", "-f", "{d}/latin1"], "not valid UTF-8 (byte 0xe9 at offset 3)"),
    (["tokenize", "-f", "{d}/binary"], "binary file"),
    (["tokenize", "-f", "{d}/empty"], "empty input"),
    (["tokenize", ""], "empty input"),
    (["tokenize", "-f", "{d}/missing.txt"], "no such file"),
    (["tokenize", "--tokenizer", "nope", "hi"], "unknown tokenizer 'nope'"),
    (["tokenize", "--tokenizer", "{d}/bad.json", "hi"], "not valid JSON"),
    (["tokenize", "--tokenizer", "{d}/cut.gguf", "hi"], "GGUF"),
    (["tokenizer", "train", "--vocab-size", "300", "--out", "{d}/o", "{d}/latin1"], "not valid UTF-8"),
    (["tokenizer", "train", "--vocab-size", "300", "--out", "{d}/o", "{d}/empty"], "empty"),
    (["tokenizer", "train", "--vocab-size", "10", "--out", "{d}/o", "{d}/latin1", "--errors", "replace"], "below"),
], ids=["latin1", "binary", "empty file", "empty text", "missing", "unknown name", "bad json", "cut gguf",
        "train latin1", "train empty", "train tiny vocab"])
def test_bad_input_is_one_line_and_exit_2(capsys, bad_files, args, message):
    code, out, err = run(capsys, *[a.format(d=bad_files) for a in args])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("llmlab: error: ") and message in err



@pytest.mark.parametrize("args, message", [
    (["classify", "{d}/latin1", "--text-column", "t", "--out", "{d}"], "is a folder; give a file name"),
    (["data", "prepare", "{d}/latin1", "--tokenizer", "char", "--out", "{d}/empty"], "exists and is not a folder"),
    (["finetune", "classify", "{d}/latin1", "--text-column", "t", "--label-column", "l", "--out", "{d}/empty/m"],
     "cannot write there"),
    (["tokenizer", "train", "--vocab-size", "300", "--out", "{d}/binary", "{d}/latin1"], "exists and is not a folder"),
], ids=["classify into a folder", "prepare into a file", "finetune under a file", "tokenizer into a file"])
def test_unwritable_outputs_are_refused_before_any_work(capsys, bad_files, args, message):
    with pytest.raises(SystemExit) as e:
        main([a.format(d=bad_files) for a in args])
    assert e.value.code == 2 and message in capsys.readouterr().err

def test_console_script_end_to_end(tmp_path):
    exe = shutil.which("llmlab", path=str(Path(sys.executable).parent))
    assert exe, "the llmlab console script is installed next to the interpreter"
    ok = subprocess.run([exe, "tokenize", "--format", "json", "hello"], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["ids"] == load_tokenizer("smollm2").encode("hello")
    (tmp_path / "x").write_bytes(b"\xff\xfe")
    bad = subprocess.run([exe, "tokenize", "-f", str(tmp_path / "x")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["complete", "--temperature", "nan", "x"], "argument --temperature: a finite number is needed, not 'nan'"),
    (["complete", "--top-p", "2", "x"], "argument --top-p: must be in (0, 1], not 2"),
    (["complete", "--seed", "99999999999999999999", "x"], "argument --seed: must be in [0, 4294967295]"),
    (["complete", "--repetition-penalty", "inf", "x"], "a finite number is needed, not 'inf'"),
    (["complete", "--repetition-penalty", "0", "x"], "argument --repetition-penalty: must be > 0, not 0"),
    (["complete", "--max-new-tokens", "0", "x"], "argument --max-new-tokens: must be at least 1, not 0"),
    (["topics", "t.csv", "--text-column", "t", "--seed", "-1"], "argument --seed: must be in [0, 4294967295], not -1"),
    (["finetune", "classify", "t.csv", "--text-column", "a", "--label-column", "b", "--out", "o", "--lr", "0"],
     "argument --lr: must be > 0, not 0"),
    (["finetune", "classify", "t.csv", "--text-column", "a", "--label-column", "b", "--out", "o",
      "--label-smoothing", "1.5"], "argument --label-smoothing: must be in [0, 1), not 1.5"),
    (["finetune", "classify", "t.csv", "--text-column", "a", "--label-column", "b", "--out", "o",
      "--batch-size", "0"], "argument --batch-size: must be at least 1, not 0"),
    (["word2vec", "train", "c.txt", "--out", "w", "--sample", "nan"], "argument --sample: a finite number"),
    (["inspect", "a.txt", "--sentences", "0"], "argument --sentences: must be at least 1, not 0"),
    (["embed", "--batch-size", "x", "hi"], "argument --batch-size: an integer is needed, not 'x'"),
])
def test_numbers_out_of_range_are_usage_errors(capsys, args, message):
    """Checked while parsing, before a model loads: NaN, infinities and out-of-range values name their flag."""
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs named pipes")
def test_file_options_read_pipes_and_say_how_to_read_stdin(capsys, tmp_path):
    """`-f <(command)` is a pipe, not a regular file: it is read. "-" where a file is needed says /dev/stdin."""
    import os
    import threading

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_text("hi", encoding="utf-8"))
    writer.start()
    assert main(["tokenize", "-t", "char", "--format", "json", "-f", str(pipe)]) == 0
    writer.join(timeout=10)
    assert json.loads(capsys.readouterr().out)["ids"] == [104, 105]
    assert main(["classify", "-", "--text-column", "a", "--method", "zero-shot", "--labels", "x,y"]) == 2
    assert "-: no such file (for standard input, give /dev/stdin)" in capsys.readouterr().err


def test_an_interrupt_a_library_swallowed_still_stops_the_command(tmp_path, capsys, monkeypatch):
    """numba ignores a Ctrl-C that lands while it compiles (UMAP's first run); topics must still stop,
    exit 130 and write nothing, not carry on and exit 0."""
    import os
    import signal

    def swallowing_topics(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass  # what "Exception ignored in ..." amounts to
        return None

    import llmlab.apps  # noqa: F401  (the package's `topics` attribute is the function, the module is in sys.modules)

    monkeypatch.setattr(sys.modules["llmlab.apps.topics"], "topics", swallowing_topics)
    (tmp_path / "t.csv").write_text("text\nmy card is lost\n", encoding="utf-8")
    assert main(["topics", str(tmp_path / "t.csv"), "--text-column", "text", "--out", str(tmp_path / "out")]) == 130
    assert "interrupted" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
