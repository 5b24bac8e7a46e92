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


TRAIN = ["train", "--data", "d", "--out", "o"]
SFT = ["finetune", "sft", "d.json", "--out", "o", "--lora"]
FC = ["finetune", "classify", "t.csv", "--text-column", "a", "--label-column", "b", "--out", "o"]
W2V = ["word2vec", "train", "c.txt", "--out", "w"]
AT_LEAST_1 = ["--n-layers", "--n-heads", "--dim", "--n-kv-heads", "--ffn-dim", "--max-seq-len", "--block-size",
              "--batch-size", "--grad-accum", "--max-iters", "--decay-steps", "--eval-interval", "--eval-windows",
              "--checkpoint-interval"]
OUT_OF_RANGE = [
    (["complete", "--temperature", "nan", "x"], "argument --temperature: a finite number is needed, not 'nan'"),
    (["complete", "--top-p", "2", "x"], "argument --top-p: must be in (0, 1], not 2"),
    (["complete", "--seed", "99999999999999999999", "x"], "argument --seed: must be in [0, 4294967295]"),
    (["complete", "--repetition-penalty", "inf", "x"], "argument --repetition-penalty: a finite number is needed"),
    (["complete", "--repetition-penalty", "0", "x"], "argument --repetition-penalty: must be > 0, not 0"),
    (["complete", "--max-new-tokens", "0", "x"], "argument --max-new-tokens: must be at least 1, not 0"),
    (["complete", "--repetition-window", "-1", "x"], "argument --repetition-window: must be at least 0, not -1"),
    (["complete", "--top-k", "0", "x"], "argument --top-k: must be at least 1, not 0"),
    (["chat", "--temperature", "-1"], "argument --temperature: must be at least 0, not -1"),
    (["chat", "--top-p", "0"], "argument --top-p: must be in (0, 1], not 0"),
    (["topics", "t.csv", "--text-column", "t", "--seed", "-1"], "argument --seed: must be in [0, 4294967295], not -1"),
    (["topics", "t.csv", "--text-column", "t", "--min-topic-size", "nan"],
     "argument --min-topic-size: an integer is needed, not 'nan'"),
    ([*FC, "--lr", "0"], "argument --lr: must be > 0, not 0"),
    ([*FC, "--label-smoothing", "1.5"], "argument --label-smoothing: must be in [0, 1), not 1.5"),
    ([*FC, "--batch-size", "0"], "argument --batch-size: must be at least 1, not 0"),
    ([*FC, "--epochs", "inf"], "argument --epochs: a finite number is needed, not 'inf'"),
    ([*FC, "--layer-decay", "0"], "argument --layer-decay: must be in (0, 1], not 0"),
    ([*FC, "--max-len", "1"], "argument --max-len: must be at least 2, not 1"),
    ([*W2V, "--sample", "nan"], "argument --sample: a finite number"),
    ([*W2V, "--sample", "-1"], "argument --sample: must be at least 0, not -1"),
    *[([*W2V, flag, "0"], f"argument {flag}: must be at least 1, not 0")
      for flag in ("--dim", "--window", "--negative", "--epochs", "--min-count")],
    ([*W2V, "--threads", "0"], "argument --threads: must be in [1, 1024], not 0"),
    ([*W2V, "--seed", "-1"], "argument --seed: must be in [0, 4294967295], not -1"),
    (["word2vec", "similar", "king", "--vectors", "v", "-n", "-2"], "argument -n: must be at least 1, not -2"),
    (["word2vec", "similar", "king", "--vectors", "v", "-n", "0"], "argument -n: must be at least 1, not 0"),
    (["word2vec", "analogy", "a", "b", "c", "--vectors", "v", "-n", "-1"], "argument -n: must be at least 1, not -1"),
    (["word2vec", "eval", "--vectors", "v", "--restrict-vocab", "0"],
     "argument --restrict-vocab: must be at least 1, not 0"),
    (["inspect", "a.txt", "--sentences", "0"], "argument --sentences: must be at least 1, not 0"),
    (["embed", "--batch-size", "x", "hi"], "argument --batch-size: an integer is needed, not 'x'"),
    (["embed", "--batch-size", "0", "hi"], "argument --batch-size: must be at least 1, not 0"),
    (["tokenizer", "train", "f.txt", "--out", "o", "--vocab-size", "0"], "argument --vocab-size: must be at least 1"),
    (["tokenizer", "train", "f.txt", "--out", "o", "--vocab-size", "300", "--min-frequency", "-1"],
     "argument --min-frequency: must be at least 1, not -1"),
    (["index", "docs", "--index", "ix", "--chunk-tokens", "1e3"], "argument --chunk-tokens: an integer is needed"),
    (["index", "docs", "--index", "ix", "--chunk-tokens", "0"], "argument --chunk-tokens: must be at least 1, not 0"),
    (["topics", "t.csv", "--text-column", "t", "--min-topic-size", "1"],
     "argument --min-topic-size: must be at least 2, not 1"),
    (["index", "docs", "--index", "ix", "--overlap", "-1"], "argument --overlap: must be at least 0, not -1"),
    (["search", "q", "--index", "ix", "-k", "0"], "argument -k: must be at least 1, not 0"),
    (["ask", "q", "--index", "ix", "-k", "-3"], "argument -k: must be at least 1, not -3"),
    (["ask", "q", "--index", "ix", "--max-new-tokens", "0"], "argument --max-new-tokens: must be at least 1, not 0"),
    (["data", "prepare", "f.txt", "-t", "char", "--out", "o", "--val-fraction", "1"],
     "argument --val-fraction: must be in [0, 1), not 1"),
    (["experiment", "tokenization", "--seed", "-1"], "argument --seed: must be in [0, 4294967295], not -1"),
    ([*TRAIN, "--lr", "nan"], "argument --lr: a finite number is needed, not 'nan'"),
    ([*TRAIN, "--lr", "0"], "argument --lr: must be > 0, not 0"),
    ([*TRAIN, "--min-lr", "inf"], "argument --min-lr: a finite number is needed, not 'inf'"),
    ([*TRAIN, "--min-lr", "-0.001"], "argument --min-lr: must be at least 0, not -0.001"),
    ([*TRAIN, "--muon-lr", "0"], "argument --muon-lr: must be > 0, not 0"),
    ([*TRAIN, "--warmup", "-5"], "argument --warmup: must be at least 0, not -5"),
    ([*TRAIN, "--grad-clip", "-1"], "argument --grad-clip: must be at least 0, not -1"),
    ([*TRAIN, "--weight-decay", "-0.1"], "argument --weight-decay: must be at least 0, not -0.1"),
    ([*TRAIN, "--beta2", "1"], "argument --beta2: must be in [0, 1), not 1"),
    ([*TRAIN, "--cooldown", "nan"], "argument --cooldown: a finite number is needed, not 'nan'"),
    ([*TRAIN, "--threads", "0"], "argument --threads: must be in [1, 1024], not 0"),
    ([*TRAIN, "--sample-chars", "-1"], "argument --sample-chars: must be at least 0, not -1"),
    ([*TRAIN, "--keep", "-1"], "argument --keep: must be at least 0, not -1"),
    ([*TRAIN, "--seed", "-1"], "argument --seed: must be in [0, 4294967295], not -1"),
    ([*TRAIN, "--dim", "1.5"], "argument --dim: an integer is needed, not '1.5'"),
    *[([*TRAIN, flag, "0"], f"argument {flag}: must be at least 1, not 0") for flag in AT_LEAST_1],
    ([*SFT, "--dropout", "5"], "argument --dropout: must be in [0, 1), not 5"),
    ([*SFT, "--alpha", "nan"], "argument --alpha: a finite number is needed, not 'nan'"),
    ([*SFT, "--alpha", "0"], "argument --alpha: must be > 0, not 0"),
    ([*SFT, "--rank", "0"], "argument --rank: must be at least 1, not 0"),
    ([*SFT, "--grad-accum", "0"], "argument --grad-accum: must be at least 1, not 0"),
    ([*SFT, "--max-steps", "0"], "argument --max-steps: must be at least 1, not 0"),
    ([*SFT, "--val-fraction", "1"], "argument --val-fraction: must be in [0, 1), not 1"),
    ([*SFT, "--max-len", "0"], "argument --max-len: must be at least 2, not 0"),
    ([*SFT, "--epochs", "0"], "argument --epochs: must be > 0, not 0"),
    ([*SFT, "--lr", "-1"], "argument --lr: must be > 0, not -1"),
]


@pytest.mark.parametrize("args, message", OUT_OF_RANGE, ids=[" ".join(a[-2:]) + f" ({a[0]})" for a, _ in OUT_OF_RANGE])
def test_numbers_out_of_range_are_usage_errors(capsys, args, message):
    """Checked while parsing, before a model loads: NaN, infinities and out-of-range values name their flag,
    on one line."""
    with pytest.raises(SystemExit) as exit_:
        main(args)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("llmlab: error: argument ") and message in err


def _options(parser, command=()):
    """(command words, action) for every option and argument of every subcommand."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*command, name))
        else:
            yield command, action


def test_every_numeric_option_has_a_checked_type():
    """No option converts with a bare int() or float(), which would let NaN, inf or negative counts through."""
    from llmlab.cli import build_parser

    options = list(_options(build_parser()))
    assert len(options) > 150
    bare = [f"{' '.join(c)} {a.option_strings or a.dest}" for c, a in options if a.type in (int, float)]
    assert bare == []


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith("llmlab: error: the following arguments are required: --data, --out")
    assert "llmlab train --help" in err
    with pytest.raises(SystemExit):
        main(["word2vec", "analogy", "king", "man"])  # one word short
    assert "required: C, --vectors" in capsys.readouterr().err


def test_final_learning_rate_above_the_peak_is_refused(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                         "--lr", "1e-4", "--min-lr", "1e-3")
    assert code == 2 and out == "" and err.count("\n") == 1 and "min-lr 0.001) is above the peak (lr 0.0001)" in err
    assert not (tmp_path / "run").exists()


def test_a_lower_peak_alone_moves_the_floor_with_it(monkeypatch, capsys, tmp_path):
    """--lr below the preset's final rate, without --min-lr: the floor keeps the preset's ratio (1/10)."""
    import llmlab.train.pretrain as pretrain

    seen = []
    monkeypatch.setattr(pretrain, "train", lambda cfg: seen.append(cfg) or {})
    args = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--preset", "tiny", "--quiet",
            "--format", "json"]
    assert main([*args, "--lr", "1e-4"]) == 0 and main([*args]) == 0 and main([*args, "--min-lr", "0"]) == 0
    assert [(c.lr, c.min_lr) for c in seen] == [(1e-4, pytest.approx(1e-5)), (3e-3, 3e-4), (3e-3, 0.0)]


def test_chunking_is_checked_before_the_index_is_made(capsys, tmp_path):
    (tmp_path / "a.txt").write_text("some text", encoding="utf-8")
    code, _, err = run(capsys, "index", str(tmp_path / "a.txt"), "--index", str(tmp_path / "ix"),
                       "--chunk-tokens", "10", "--overlap", "10")
    assert code == 2 and "overlap must be in 0..9, not 10" in err and not (tmp_path / "ix").exists()


def _help(capsys, *args) -> str:
    """The --help text of a command, on one line (argparse wraps it to the terminal's width)."""
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_the_real_defaults(capsys):
    chat = _help(capsys, "chat")
    assert "--temperature T sampling temperature, 0 = greedy (default 0.2)" in chat
    assert "probability P (default 0.9)" in chat
    assert "generate (default 512, or half the model's context window when" in chat
    assert "(default int4)" in chat and "`llmlab train` run (GPT-2 or Llama family)" in chat
    complete = _help(capsys, "complete")
    assert "0 = greedy (default 0)" in complete and "probability P (default 1: off)" in complete
    assert "(default 128, or what the context window leaves after the prompt" in complete
    assert "{model, prompt_tokens, ids, text, finish_reason}" in complete
    ask = _help(capsys, "ask")
    assert "the longest answer in tokens (default 160)" in ask and "(default int4)" in ask
    assert "hybrid (default)" in ask and "`llmlab finetune sft` output" in ask
    w2v = _help(capsys, "word2vec", "train")
    for text in ("vector size (default 100)", "(default 5)", "worker threads (default 1)",
                 "seed for everything random (default 1)", "drop words seen fewer than N times (default 5)"):
        assert text in w2v
    assert "passes over the data" in _help(capsys, "finetune", "sft")
    assert "texts per forward pass (default 32)" in _help(capsys, "embed")
    assert "minilm (default)" in _help(capsys, "similarity") and "minilm (default)" in _help(capsys, "embed")
    assert "(default int4)" in _help(capsys, "inspect") and "hybrid (default)" in _help(capsys, "search")
    assert "SmolLM2's (--pretokenizer smollm)" in _help(capsys, "tokenizer", "train")


def test_help_names_what_the_numbers_count(capsys):
    analogy = _help(capsys, "word2vec", "analogy")
    assert "A B C" in analogy and "A B C A B C" not in analogy
    train = _help(capsys, "train")
    assert "--sample-chars N at each evaluation, N tokens generated" in train and "CHARS" not in train
    assert "--keep KEEP newest checkpoints kept, older ones deleted (0: keep all)" in train


def test_listings_print_json(capsys):
    from llmlab.apps.presets import presets
    from llmlab.experiments import available

    code, out, _ = run(capsys, "experiment", "--list", "--format", "json")
    assert code == 0 and json.loads(out) == [{"name": n, "claim": e.claim} for n, e in available().items()]
    code, out, _ = run(capsys, "chat", "--list-presets", "--format", "json")
    assert code == 0 and json.loads(out) == [{"name": n, "prompt": p} for n, p in presets().items()]
    assert any(item["name"] == "chef" for item in json.loads(out))


def test_word2vec_eval_says_why_questions_were_skipped(capsys, tmp_path):
    (tmp_path / "v.txt").write_text("5 2\nking 1 0\nqueen 0 1\nman 1 0.1\nwoman 0.1 1\napple 0.5 0.5\n",
                                    encoding="utf-8")
    (tmp_path / "questions-words.txt").write_text(": family\nman woman king queen\nman woman boy girl\n",
                                                  encoding="utf-8")
    for name in ("wordsim353.tsv", "simlex999.txt"):
        (tmp_path / name).write_text("king\tqueen\t8\nman\twoman\t7\napple\tking\t1\n", encoding="utf-8")
    base = ["word2vec", "eval", "--vectors", str(tmp_path / "v.txt"), "--data", str(tmp_path)]
    code, out, _ = run(capsys, *base)
    assert code == 0 and "of 1 questions (1 skipped: a word not in the vectors' 5-word vocabulary)" in out
    code, out, _ = run(capsys, *base, "--restrict-vocab", "4")
    assert code == 0 and "of 1 questions (1 skipped: a word outside the 4 most frequent words)" in out



def test_json_output_has_no_nan(capsys, tmp_path):
    """Human scores all equal: Spearman is undefined (NaN), which JSON cannot hold; it is printed as null."""
    (tmp_path / "v.txt").write_text("3 2\nking 1 0\nqueen 0 1\nman 1 0.1\n", encoding="utf-8")
    (tmp_path / "questions-words.txt").write_text(": family\nman king man king\n", encoding="utf-8")
    for name in ("wordsim353.tsv", "simlex999.txt"):
        (tmp_path / name).write_text("king\tqueen\t5\nman\tqueen\t5\nking\tman\t5\n", encoding="utf-8")
    code, out, _ = run(capsys, "word2vec", "eval", "--vectors", str(tmp_path / "v.txt"), "--data", str(tmp_path),
                       "--format", "json")

    def refuse(constant):
        raise AssertionError(f"invalid JSON number {constant}")

    doc = json.loads(out, parse_constant=refuse)
    assert code == 0 and doc["wordsim353"]["spearman"] is None and doc["wordsim353"]["pairs"] == 3
    code, out, _ = run(capsys, "word2vec", "eval", "--vectors", str(tmp_path / "v.txt"), "--data", str(tmp_path))
    assert code == 0 and "wordsim353: Spearman n/a (the scores or similarities are all equal) on 3 pairs" in out


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

    # a Ctrl-C must be able to arrive: started in the background without job control, Python begins with
    # SIGINT ignored (as under nohup), and then nothing is delivered to test
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    monkeypatch.setattr(sys.modules["llmlab.apps.topics"], "topics", swallowing_topics)
    (tmp_path / "t.csv").write_text("text\nmy card is lost\n", encoding="utf-8")
    try:
        code = main(["topics", str(tmp_path / "t.csv"), "--text-column", "text", "--out", str(tmp_path / "out")])
        assert code == 130 and "interrupted" in capsys.readouterr().err and not (tmp_path / "out").exists()
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_files_marked_utf16_or_utf32_are_read_by_their_mark(capsys, tmp_path, codec):
    """-f reads UTF-8 byte for byte, and UTF-16 / UTF-32 files by the byte-order mark they start with."""
    text = "naïve café 我\n"
    data = text.encode(codec) if codec != "utf-16-be" else b"\xfe\xff" + text.encode(codec)
    (tmp_path / "marked.txt").write_bytes(data)
    code, out, err = run(capsys, "tokenize", "-f", str(tmp_path / "marked.txt"), "--format", "json")
    assert (code, err) == (0, "") and json.loads(out)["ids"] == load_tokenizer("smollm2").encode(text)
    # data prepare reads its corpus in UTF-8 pieces: it says what the file is
    code, _, err = run(capsys, "data", "prepare", str(tmp_path / "marked.txt"), "-t", "char",
                       "--out", str(tmp_path / "prepared"))
    assert code == 2 and "text (it starts with a byte-order mark)" in err and "without" not in err


def test_finetune_classify_with_no_usable_row_says_so(capsys, tmp_path):
    (tmp_path / "blank.csv").write_text("text,label\n ,pos\n,neg\n", encoding="utf-8")
    code, _, err = run(capsys, "finetune", "classify", str(tmp_path / "blank.csv"), "--text-column", "text",
                       "--label-column", "label", "--out", str(tmp_path / "m"), "--quiet")
    assert code == 2 and "no row has both a text ('text') and a label ('label')" in err
