"""Reading user files with clear errors, and writing our files atomically.

``read_text`` turns every way a text file can be wrong (missing, a folder, binary,
not UTF-8, empty) into one ``LlmlabError`` line that names the file and the problem.
``atomic_write_text`` writes to a temporary file in the same folder and renames it
over the target, so a reader never sees a half-written file.
"""

import os
import tempfile
from pathlib import Path

from llmlab.errors import LlmlabError


def decode_utf8(data: bytes, source: str, errors: str = "strict", offset: int = 0) -> str:
    """Decode bytes as UTF-8, naming the first bad byte's offset when they are not.

    ``offset`` is where ``data`` starts in its file, for messages about later chunks."""
    if b"\x00" in data[:8192]:
        raise LlmlabError(f"{source}: looks like a binary file (NUL bytes), expected UTF-8 text")
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise LlmlabError(
            f"{source}: not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {offset + e.start}); "
            "convert it to UTF-8 first"
        ) from None


def read_text(path: str | os.PathLike, errors: str = "strict", allow_empty: bool = False) -> str:
    """The whole file as a string, exactly as stored (no newline or BOM handling)."""
    p = Path(path)
    if not p.exists():
        raise LlmlabError(f"{p}: no such file")
    if p.is_dir():
        raise LlmlabError(f"{p}: is a folder, expected a text file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise LlmlabError(f"{p}: cannot read ({e.strerror})") from None
    if not data and not allow_empty:
        raise LlmlabError(f"{p}: file is empty")
    return decode_utf8(data, str(p), errors)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` via a temporary file and a rename."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
