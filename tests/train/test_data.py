"""Token folders (llmlab/train/data.py): streaming reader, round trip, split point, batches, bad input."""

import json

import numpy as np
import pytest
import torch

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.tokenize import load_tokenizer
from llmlab.train.data import BatchSampler, TokenData, eval_starts, iter_tokens, prepare, read_chunks

from .conftest import SAMPLE


def test_read_chunks_joins_back_and_cuts_after_newlines(tmp_path):
    text = "first line\nzweite Zeile ü\n中文句子很长没有空格" * 50 + "\nlast, no newline"
    f = tmp_path / "t.txt"
    f.write_text(text, encoding="utf-8")
    chunks = list(read_chunks(f, chunk_bytes=64))
    assert "".join(chunks) == text and len(chunks) > 10
    assert all(c.endswith("\n") for c in chunks[:-1])


def test_read_chunks_splits_a_huge_line_between_characters(tmp_path):
    text = "é中" * 5000  # no newline at all
    f = tmp_path / "t.txt"
    f.write_text(text, encoding="utf-8")
    assert "".join(read_chunks(f, chunk_bytes=100)) == text


def test_char_round_trip_and_split_at_ninety_percent(char_data):
    text = SAMPLE.read_text(encoding="utf-8")
    data = TokenData(char_data)
    tok = data.tokenizer()
    train, val = data.split("train"), data.split("val")
    assert data.dtype == np.uint16 and data.vocab_size == len(set(text)) + 1  # + [UNK]
    assert len(train) + len(val) == len(text)
    assert len(train) == int(len(text) * 0.9)
    assert tok.decode(train.tolist()) == text[: len(train)]  # first 90% of characters train
    assert tok.decode(val.tolist()) == text[len(train):]  # last 10% validate


def test_streaming_in_small_chunks_gives_the_same_tokens(tmp_path, char_data):
    prepare([SAMPLE], str(char_data), tmp_path, val_fraction=0.1, chunk_bytes=1000, progress=False)
    a, b = TokenData(tmp_path), TokenData(char_data)
    assert np.array_equal(a.split("train"), b.split("train")) and np.array_equal(a.split("val"), b.split("val"))
    pieces = list(iter_tokens(a.split("train"), chunk=777))
    assert len(pieces) > 1 and np.array_equal(np.concatenate(pieces), a.split("train"))


def test_word_tokenizer_ids_and_several_files(tmp_path):
    f1, f2 = tmp_path / "a.txt", tmp_path / "b.txt"
    f1.write_text("The cat sat on the mat.\n", encoding="utf-8")
    f2.write_text("A dog ran.\n", encoding="utf-8")
    meta = prepare([f1, f2], "word", tmp_path / "out", val_fraction=0.25, progress=False)
    data = TokenData(tmp_path / "out")
    ids = np.concatenate([data.split("train"), data.split("val")]).tolist()
    assert ids == load_tokenizer("word").encode("The cat sat on the mat.\nA dog ran.\n", special=False)
    assert meta["val_tokens"] == len(ids) - int(len(ids) * 0.75)


def test_batches_are_shifted_windows_seeded_and_split_over_ranks(char_data):
    tokens = TokenData(char_data).split("train")
    s = BatchSampler(tokens, block_size=8, batch_size=6, seed=3)
    state = s.state_dict()
    x, y = s.next()  # (6, 8) each
    assert x.shape == y.shape == (6, 8) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    s.load_state_dict(state)
    assert torch.equal(s.next()[0], x)  # same generator state, same batch
    halves = [BatchSampler(tokens, 8, 6, seed=3, rank=r, world=2).next()[0] for r in (0, 1)]
    assert torch.equal(torch.cat(halves), x)  # two ranks draw one global batch between them


def test_eval_starts_cover_or_sample_the_split():
    assert eval_starts(100, 10) == list(range(0, 90, 10))
    assert len(eval_starts(10_000, 10, max_windows=7)) == 7


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(LlmlabError, match="no tokens"):
        prepare([empty], "char", tmp_path / "o", progress=False)
    with pytest.raises(LlmlabError, match="no token shards"):
        TokenData(tmp_path)
    assert main(["data", "prepare", str(empty), "--tokenizer", "char", "--out", str(tmp_path / "o")]) == 2
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("llmlab: error: ") for line in err)
    assert "no token shards" in err[1]


def test_cli_prepare_json(tmp_path, capsys):
    assert main(["data", "prepare", str(SAMPLE), "-t", "char", "--out", str(tmp_path), "--format", "json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["train_tokens"] == TokenData(tmp_path).split("train").shape[0]


def test_a_failed_prepare_leaves_no_empty_folder(tmp_path, capsys):
    out = tmp_path / "new" / "tokens"
    assert main(["data", "prepare", str(SAMPLE), "-t", "char", "--out", str(out), "--val-fraction", "0.99999"]) == 2
    assert "leaves none to train on" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    assert main(["data", "prepare", str(tmp_path / "empty.txt"), "-t", "word", "--out", str(out)]) == 2
    assert not out.exists()


def test_prepare_stops_at_bad_bytes_or_replaces_them(tmp_path, capsys):
    bad = tmp_path / "mixed.txt"
    bad.write_bytes("a café\n".encode() + "une bière\n".encode("latin-1"))
    assert main(["data", "prepare", str(bad), "-t", "char", "--out", str(tmp_path / "a")]) == 2
    assert "or read bad bytes as U+FFFD with --errors replace" in capsys.readouterr().err
    assert main(["data", "prepare", str(bad), "-t", "char", "--out", str(tmp_path / "b"), "--errors", "replace"]) == 0
    assert "\ufffd" in TokenData(tmp_path / "b").tokenizer().decode(list(range(TokenData(tmp_path / "b").vocab_size)))
