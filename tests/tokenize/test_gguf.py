"""Our GGUF metadata reader against the `gguf` package's reader, and corrupt files."""

import struct

import pytest

from llmlab.errors import TokenizerError
from llmlab.packages import smollm2_gguf
from llmlab.tokenize import load_tokenizer
from llmlab.tokenize.gguf import read_gguf_metadata


def test_every_key_matches_the_gguf_package():
    import gguf

    path = smollm2_gguf()
    ours = read_gguf_metadata(path)
    reader = gguf.GGUFReader(path)
    theirs = {k: f.contents() for k, f in reader.fields.items()}
    assert ours["GGUF.tensor_count"] == theirs["GGUF.tensor_count"] == 272
    for key, value in theirs.items():
        if key.startswith("GGUF."):
            continue
        if isinstance(value, float):
            assert ours[key] == pytest.approx(value), key
        else:
            assert ours[key] == value, key
    assert set(ours) - {"GGUF.version", "GGUF.tensor_count"} == {k for k in theirs if not k.startswith("GGUF.")}


def _header(n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, 0, n_kv)


def _string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def test_hand_made_file(tmp_path):
    body = (
        _string("general.name") + struct.pack("<I", 8) + _string("tiny")
        + _string("answer") + struct.pack("<Ii", 5, -42)
        + _string("ok") + struct.pack("<I?", 7, True)
        + _string("list") + struct.pack("<IIQ", 9, 4, 3) + struct.pack("<3I", 1, 2, 3)
        + _string("words") + struct.pack("<IIQ", 9, 8, 2) + _string("a") + _string("我")
    )
    path = tmp_path / "tiny.gguf"
    path.write_bytes(_header(5) + body)
    meta = read_gguf_metadata(path)
    assert meta == {"GGUF.version": 3, "GGUF.tensor_count": 0, "general.name": "tiny", "answer": -42,
                    "ok": True, "list": [1, 2, 3], "words": ["a", "我"]}


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a gguf file at all, just text", "not a GGUF file"),
        (b"GGUF", "too small"),
        (_header(1, version=1) + b"\0" * 16, "unsupported GGUF version 1"),
        (_header(1) + _string("key") + struct.pack("<I", 99) + b"\0" * 8, "unknown GGUF value type 99"),
        (_header(3) + _string("key") + struct.pack("<I", 8), "truncated"),
        (_header(1) + struct.pack("<Q", 10**12) + b"k" * 8, "runs past the end"),
    ],
    ids=["text", "tiny", "version", "type", "truncated", "huge string"],
)
def test_corrupt_files_raise_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(TokenizerError, match=message):
        read_gguf_metadata(path)


def test_truncated_real_file(tmp_path):
    path = tmp_path / "cut.gguf"
    with open(smollm2_gguf(), "rb") as f:
        path.write_bytes(f.read(300_000))  # the cut falls inside the token list
    with pytest.raises(TokenizerError, match="truncated|runs past"):
        load_tokenizer(path)


def test_gguf_without_a_bpe_tokenizer(tmp_path):
    path = tmp_path / "spm.gguf"
    path.write_bytes(_header(1) + _string("tokenizer.ggml.model") + struct.pack("<I", 8) + _string("llama"))
    with pytest.raises(TokenizerError, match="'llama' is not supported"):
        load_tokenizer(path)
