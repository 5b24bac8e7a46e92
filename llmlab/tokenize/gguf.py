"""Read the key-value metadata of a GGUF file (the llama.cpp model format).

GGUF layout (version 2 and 3, little-endian): the magic ``GGUF``, a uint32 version,
uint64 tensor count, uint64 key-value count, then the key-value pairs, then tensor
descriptions and data. Each key is a string (uint64 length + UTF-8 bytes) followed by
a uint32 value type and the value; arrays hold a uint32 element type, a uint64 count
and the elements. This module reads the key-value pairs only: that is where the
tokenizer (``tokenizer.ggml.*``) and the model's hyper-parameters live. Tensor data is
the business of ``llmlab.weights``.

Spec: github.com/ggml-org/ggml/blob/master/docs/gguf.md. Tested by
tests/tokenize/test_gguf.py against the ``gguf`` package's reader on the SmolLM2 file.
"""

import mmap
import struct
from pathlib import Path
from typing import Any

from llmlab.errors import TokenizerError

# value type -> struct format of one scalar
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class _Reader:
    def __init__(self, buf, source: str):
        self.buf, self.pos, self.source = buf, 0, source

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise TokenizerError(f"{self.source}: GGUF metadata is truncated (at byte {self.pos})")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.take("<Q")
        if self.pos + n > len(self.buf):
            raise TokenizerError(f"{self.source}: GGUF string of {n} bytes runs past the end of the file")
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.take("<I"), self.take("<Q")
            if count > len(self.buf):
                raise TokenizerError(f"{self.source}: GGUF array of {count} elements is larger than the file")
            if etype in _SCALARS:  # one unpack for the whole array
                fmt = _SCALARS[etype]
                size = struct.calcsize(fmt) * count
                if self.pos + size > len(self.buf):
                    raise TokenizerError(f"{self.source}: GGUF metadata is truncated (array at byte {self.pos})")
                values = list(struct.unpack_from(f"<{count}{fmt[1]}", self.buf, self.pos))
                self.pos += size
                return values
            return [self.value(etype) for _ in range(count)]
        raise TokenizerError(f"{self.source}: unknown GGUF value type {vtype} at byte {self.pos}")


def parse_metadata(buf, source: str) -> tuple[dict[str, Any], "_Reader"]:
    """Key-value pairs of GGUF bytes ``buf``; the returned reader stands at the tensor infos."""
    if len(buf) < 24:
        raise TokenizerError(f"{source}: too small to be a GGUF file")
    if bytes(buf[:4]) != b"GGUF":
        raise TokenizerError(f"{source}: not a GGUF file (bad magic {bytes(buf[:4])!r})")
    r = _Reader(buf, source)
    r.pos = 4
    version = r.take("<I")
    if version not in (2, 3):
        raise TokenizerError(f"{source}: unsupported GGUF version {version} (2 and 3 are supported)")
    meta: dict[str, Any] = {"GGUF.version": version, "GGUF.tensor_count": r.take("<Q")}
    n_kv = r.take("<Q")
    for _ in range(n_kv):
        key = r.string()
        meta[key] = r.value(r.take("<I"))
    return meta, r


def read_gguf_metadata(path: str | Path) -> dict[str, Any]:
    """All key-value pairs of a GGUF file, plus ``GGUF.version`` and ``GGUF.tensor_count``."""
    p = Path(path)
    if not p.is_file():
        raise TokenizerError(f"{p}: no such GGUF file")
    with open(p, "rb") as f:
        if p.stat().st_size < 24:
            raise TokenizerError(f"{p}: too small to be a GGUF file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return parse_metadata(buf, str(p))[0]
