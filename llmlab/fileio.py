"""Reading user files with clear errors, and writing our files atomically.

``read_text`` turns every way a text file can be wrong (missing, a folder, binary,
not in its encoding, empty) into one ``LlmlabError`` line that names the file and the problem.
Text is UTF-8 unless a byte-order mark says UTF-8/16/32 (as Excel and Notepad write them) or
the caller names another encoding (``cp1252``, ``latin-1``, ``gbk``, ``shift_jis``...).
``atomic_write_text`` writes to a temporary file in the same folder and renames it
over the target, so a reader never sees a half-written file.
"""

import codecs
import contextlib
import os
import signal
import tempfile
import threading
from pathlib import Path

from llmlab.errors import EncodingError, LlmlabError

# Longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_utf8(data: bytes, source: str, errors: str = "strict", offset: int = 0) -> str:
    """Decode bytes as UTF-8, naming the first bad byte's offset when they are not.

    ``offset`` is where ``data`` starts in its file, for messages about later chunks."""
    if b"\x00" in data[:8192]:
        marked = next((codec for bom, codec in _BOMS if offset == 0 and data.startswith(bom)), None)
        if marked is not None:  # UTF-16 / UTF-32 with its mark, where UTF-8 is read in pieces
            raise LlmlabError(f"{source}: {marked.upper()} text (it starts with a byte-order mark); this command "
                              "reads UTF-8: convert it to UTF-8 first")
        head = data[:512]
        for name, zeros in (("utf-16-le", head[1::2]), ("utf-16-be", head[::2])):
            if len(head) >= 8 and zeros.count(0) > 0.9 * len(zeros):  # ASCII text stored as UTF-16, no BOM
                raise EncodingError(f"{source}: looks like UTF-16 text without a byte-order mark; "
                                    "convert it to UTF-8 first", suggestion=name)
        raise LlmlabError(f"{source}: looks like a binary file (NUL bytes), expected UTF-8 text")
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise EncodingError(
            f"{source}: not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {offset + e.start}); "
            "convert it to UTF-8 first"
        ) from None


def check_encoding(name: str) -> str:
    """Python's name for the text encoding ``name`` ("latin1" -> "iso8859-1"), or a one-line error."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise LlmlabError(f"unknown text encoding {name!r} (e.g. utf-8, cp1252, latin-1, gbk, shift_jis)") from None


def decode_text(data: bytes, source: str, encoding: str | None = None, errors: str = "strict") -> str:
    """Decode a whole file's bytes; a leading byte-order mark is dropped.

    A byte-order mark names the encoding; without one the text is UTF-8, or, when it is not valid
    UTF-8 and ``encoding`` is given, that encoding. So a folder holding UTF-8 files and files in
    one legacy encoding (cp1252, gbk...) reads right with that encoding named: a text in a legacy
    encoding with any byte above 127 is almost never valid UTF-8, while reading UTF-8 as cp1252
    would garble it without an error. A UTF-16 or UTF-32 ``encoding`` is used as given."""
    marked = next((codec for bom, codec in _BOMS if data.startswith(bom)), None)
    name = check_encoding(encoding) if encoding is not None else None
    if marked is not None:
        encoding = name = marked
    elif name is None or name == "utf-8":
        return decode_utf8(data, source, errors)
    elif not name.startswith(("utf-16", "utf-32")):
        if b"\x00" in data[:8192]:
            raise LlmlabError(f"{source}: looks like a binary file (NUL bytes), expected {encoding} text")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass  # not UTF-8: the named encoding
    try:
        return data.decode(name, errors=errors).removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise EncodingError(f"{source}: not valid {encoding} (byte 0x{data[e.start]:02x} at offset {e.start}); "
                            "check the encoding it was saved in") from None


def path_list(paths) -> list:
    """Paths given as one path (a str or ``Path``) or as any iterable of them, as a list: one
    file name is never read as the list of its characters."""
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    if isinstance(paths, bytes):
        raise LlmlabError("give paths as str or Path, not bytes")
    try:
        return list(paths)
    except TypeError:
        raise LlmlabError(f"expected a path or a list of paths, not {type(paths).__name__}") from None


def read_bytes(path: str | os.PathLike, allow_empty: bool = False) -> bytes:
    """The whole file's bytes, or a one-line error (missing, a folder, unreadable, empty)."""
    p = Path(path)
    if not p.exists():
        stdin = " (for standard input, give /dev/stdin)" if str(path) == "-" and os.path.exists("/dev/stdin") else ""
        raise LlmlabError(f"{p}: no such file{stdin}")
    if p.is_dir():
        raise LlmlabError(f"{p}: is a folder, expected a text file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise LlmlabError(f"{p}: cannot read ({e.strerror})") from None
    if not data and not allow_empty:
        raise LlmlabError(f"{p}: file is empty")
    return data


def read_text(path: str | os.PathLike, errors: str = "strict", allow_empty: bool = False,
              encoding: str | None = None) -> str:
    """The whole file as a string (no newline handling; a leading byte-order mark dropped).

    ``encoding``: see `decode_text` (default: UTF-8, or what a byte-order mark says)."""
    return decode_text(read_bytes(path, allow_empty), str(path), encoding, errors)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` via a temporary file and a rename."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def output_path(path: str | os.PathLike) -> Path:
    """``path`` as a file to write, checked before any work is done: not a folder, and not under
    an existing file. Nothing is created."""
    p = Path(path)
    if p.is_dir():
        raise LlmlabError(f"{p}: is a folder; give a file name")
    _not_under_a_file(p)
    return p


def _not_under_a_file(p: Path) -> None:
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise LlmlabError(f"{p}: cannot write there, {parent} is a file")
            return


def output_folder(path: str | os.PathLike) -> Path:
    """``path`` as a folder to write into, checked before any work is done: a folder or nothing
    yet, and not under an existing file. Nothing is created."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise LlmlabError(f"{p}: exists and is not a folder")
    _not_under_a_file(p)
    return p


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename (missing
    folders are made); through a symbolic link, to its target; to a device or pipe (/dev/stdout),
    directly. A failure (a folder in the way, no permission, a full disk) is one
    ``LlmlabError`` line, and the file is left as it was."""
    p = output_path(path)
    if p.exists() and not p.is_file():  # /dev/stdout, /dev/null, a named pipe: no rename there. Opened by
        # the name given: /dev/stdout of a pipe resolves to "pipe:[N]", which is no path to open
        try:
            with open(p, "wb") as f:
                f.write(data)
        except OSError as e:
            raise LlmlabError(f"{p}: cannot write ({e.strerror or e})") from None
        return p
    return atomic_write_files({p: data})[0]


def atomic_write_files(files: dict) -> list[Path]:
    """Write several files (path -> bytes) that belong together, so that they change together:
    every one is written to a temporary file first, then all are renamed into place with Ctrl-C
    held back (one arriving meanwhile counts once the last is in place). An error or Ctrl-C
    before that leaves every file as it was, and no folder made for them. Regular files only (a
    symbolic link is followed)."""
    targets = []
    for path in files:
        p = output_path(path)
        if p.is_symlink():
            p = Path(os.path.realpath(p))
        if p.exists() and not p.is_file():
            raise LlmlabError(f"{p}: not a regular file; cannot replace it")
        targets.append(p)
    temps, made = [], []
    at = targets[0] if targets else None  # the file being written: named by an error, not its temporary file
    try:
        for at, data in zip(targets, files.values()):
            made += [d for d in (at.parent, *at.parent.parents) if not d.exists()]
            at.parent.mkdir(parents=True, exist_ok=True)
            _write_beside(at, data, temps)
        with _interrupts_held():
            for tmp, at in zip(temps, targets):
                os.replace(tmp, at)
    except BaseException as e:
        _remove(temps)
        for d in sorted(set(made), key=lambda d: len(d.parts), reverse=True):  # only if still empty
            try:
                d.rmdir()
            except OSError:
                pass
        if isinstance(e, OSError):
            raise LlmlabError(f"{at}: cannot write ({e.strerror or e})") from None
        raise
    return targets


def _write_beside(p: Path, data: bytes, temps: list) -> None:
    """A temporary file holding ``data`` in ``p``'s folder, on disk; its name appended to ``temps``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    temps.append(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _remove(temps: list) -> None:
    for tmp in temps:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def _interrupts_held():
    """Ctrl-C (SIGINT) held back in the block and acted on after it. Python runs signal handlers in
    the main thread whichever thread the OS gave the signal to, so the handler is swapped there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if caught:
            if callable(old):
                old(signal.SIGINT, caught[0])
            elif old == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)
            elif old is None:  # a handler not set from Python
                raise KeyboardInterrupt


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
