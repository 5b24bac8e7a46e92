"""Names and paths resolve through `load_tokenizer`; bad ones give one clear error."""

import shutil

import pytest

from llmlab.errors import TokenizerError
from llmlab.packages import minilm_dir, smollm2_gguf
from llmlab.tokenize import NAMES, BPETokenizer, WordPieceTokenizer, load_tokenizer


@pytest.mark.parametrize("name", list(NAMES))
def test_every_name_loads_and_round_trips_ascii(name):
    tok = load_tokenizer(name)
    assert tok.name == name and tok.vocab_size > 0
    assert len(tok.encode("hello world")) >= 2


def test_paths_resolve_by_kind(tmp_path):
    assert isinstance(load_tokenizer(smollm2_gguf()), BPETokenizer)
    assert isinstance(load_tokenizer(minilm_dir() / "vocab.txt"), WordPieceTokenizer)
    assert isinstance(load_tokenizer(minilm_dir() / "tokenizer.json"), WordPieceTokenizer)
    assert isinstance(load_tokenizer(minilm_dir()), WordPieceTokenizer)  # folder with tokenizer.json
    (tmp_path / "model").mkdir()
    shutil.copy(smollm2_gguf(), tmp_path / "model" / "m.gguf")
    assert isinstance(load_tokenizer(tmp_path / "model"), BPETokenizer)  # folder with one .gguf
    run = tmp_path / "run"  # a training run: the tokenizer of the checkpoint its `latest` names
    (run / "step-000002").mkdir(parents=True)
    shutil.copy(minilm_dir() / "vocab.txt", run / "step-000002" / "vocab.txt")
    (run / "latest").write_text("step-000002\n")
    assert load_tokenizer(run).encode("hello") == load_tokenizer("minilm").encode("hello")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"model": {"type": "Unigram"}}', "unsupported tokenizer model 'Unigram'"),
    ('{"model": {"type": "BPE"}}', "malformed tokenizer.json"),
    ("", "file is empty"),
])
def test_corrupt_tokenizer_json(tmp_path, content, message):
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(TokenizerError, match=message):
        load_tokenizer(path)


def test_unknown_names_and_paths(tmp_path):
    with pytest.raises(TokenizerError, match="unknown tokenizer 'gpt5'"):
        load_tokenizer("gpt5")
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"\0\1")
    with pytest.raises(TokenizerError, match="not a tokenizer file"):
        load_tokenizer(tmp_path / "weights.bin")


@pytest.mark.parametrize("name", list(NAMES))
def test_decode_takes_arrays_and_tensors_alike_and_refuses_what_is_not_ids(name):
    """A numpy array or 1-D tensor decodes as its list does (special tokens recognised in it too)."""
    import numpy as np
    import torch

    tok = load_tokenizer(name)
    ids = tok.encode("hello world")
    assert tok.decode(np.array(ids)) == tok.decode(torch.tensor(ids)) == tok.decode(ids)
    for bad in (torch.tensor(5), 5, None, "abc", [1.5], [ids], torch.tensor([ids])):
        with pytest.raises(TokenizerError):
            tok.decode(bad)


def test_special_ids_in_a_tensor_are_special():
    import torch

    minilm, smollm2 = load_tokenizer("minilm"), load_tokenizer("smollm2")
    assert minilm.decode(torch.tensor(minilm.encode("hello world"))) == "hello world"  # [CLS] / [SEP] skipped
    assert smollm2.decode(torch.tensor(smollm2.encode("<|im_start|>hi")), skip_special=True) == "hi"
