"""Reading users' text files: byte-order marks, named encodings, and the errors for the rest."""

import codecs
import os

import pytest

from llmlab.errors import EncodingError, LlmlabError
from llmlab.fileio import decode_text, read_text

TEXT = "text,label\ncafé “au lait”,pos\n"


@pytest.mark.parametrize("data", [
    codecs.BOM_UTF8 + TEXT.encode("utf-8"),  # Excel's "CSV UTF-8"
    TEXT.encode("utf-16"),  # Notepad's "Unicode": a BOM, then little-endian
    codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
    TEXT.encode("utf-32"),
], ids=["utf-8 bom", "utf-16", "utf-16-be bom", "utf-32"])
def test_a_byte_order_mark_names_the_encoding_and_is_dropped(tmp_path, data):
    (tmp_path / "f.csv").write_bytes(data)
    assert read_text(tmp_path / "f.csv") == TEXT


def test_named_encodings():
    data = TEXT.encode("cp1252")
    with pytest.raises(EncodingError, match=r"x: not valid UTF-8 \(byte 0xe9 at offset 14\)") as e:
        decode_text(data, "x")
    assert e.value.suggestion is None
    assert decode_text(data, "x", "cp1252") == TEXT
    assert decode_text("日本語のテキスト".encode("shift_jis"), "x", "shift_jis") == "日本語のテキスト"
    assert decode_text(codecs.BOM_UTF8 + b"abc", "x", "utf-8") == "abc"
    with pytest.raises(EncodingError, match=r"x: not valid shift_jis \(byte 0x81 at offset 1\)"):
        decode_text(b"a\x81 b", "x", "shift_jis")
    # The named encoding is for text that is not UTF-8: UTF-8 files of the same folder stay right.
    assert decode_text(TEXT.encode("utf-8"), "x", "cp1252") == TEXT
    assert decode_text(TEXT.encode("utf-16"), "x", "cp1252") == TEXT  # and a byte-order mark wins
    with pytest.raises(LlmlabError, match="unknown text encoding 'klingon'"):
        decode_text(data, "x", "klingon")
    with pytest.raises(LlmlabError, match="binary file"):
        decode_text(b"\x7fELF\x02\x01\x00\x00" * 4, "x", "latin-1")


def test_utf16_without_a_mark_is_recognised_in_the_error():
    with pytest.raises(EncodingError, match="looks like UTF-16 text without a byte-order mark") as e:
        decode_text(TEXT.encode("utf-16-le"), "x")
    assert e.value.suggestion == "utf-16-le"
    with pytest.raises(EncodingError) as e:
        decode_text(TEXT.encode("utf-16-be"), "x")
    assert e.value.suggestion == "utf-16-be"
    assert decode_text(TEXT.encode("utf-16-le"), "x", "utf-16-le") == TEXT
    with pytest.raises(LlmlabError, match="looks like a binary file") as e:
        decode_text(b"\x7fELF\x02\x01\x00\x00" * 64, "x")
    assert not isinstance(e.value, EncodingError)


def test_outputs_that_cannot_be_written_are_one_line_errors(tmp_path):
    from llmlab.fileio import atomic_write_text, output_folder, output_path

    (tmp_path / "a.txt").write_text("old", encoding="utf-8")
    with pytest.raises(LlmlabError, match="is a folder; give a file name"):
        atomic_write_text(tmp_path, "x")
    with pytest.raises(LlmlabError, match=r"a.txt/b/c.csv: cannot write there, .*a.txt is a file"):
        output_path(tmp_path / "a.txt" / "b" / "c.csv")
    with pytest.raises(LlmlabError, match="a.txt: exists and is not a folder"):
        output_folder(tmp_path / "a.txt")
    assert output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checked, nothing made
    assert atomic_write_text(tmp_path / "new" / "f.txt", "made").read_text(encoding="utf-8") == "made"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc (a folder no file can be made in)")
def test_an_os_refusal_is_a_one_line_error():
    from llmlab.fileio import atomic_write_text

    with pytest.raises(LlmlabError, match="/proc/self/llmlab.txt: cannot write"):
        atomic_write_text("/proc/self/llmlab.txt", "x")


def test_writes_go_through_links_and_into_pipes(tmp_path):
    """A symbolic link stays a link (its target is written); a named pipe is written into, not replaced."""
    import threading

    from llmlab.fileio import atomic_write_text

    (tmp_path / "real").mkdir()
    (tmp_path / "link.csv").symlink_to(tmp_path / "real" / "target.csv")
    atomic_write_text(tmp_path / "link.csv", "through")
    assert (tmp_path / "link.csv").is_symlink() and (tmp_path / "real" / "target.csv").read_text() == "through"
    if not hasattr(os, "mkfifo"):
        return
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()))
    reader.start()
    atomic_write_text(fifo, "streamed")
    reader.join(timeout=10)
    assert received == [b"streamed"] and fifo.is_fifo()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
def test_a_full_stdout_is_a_one_line_error():
    import subprocess
    import sys

    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "llmlab.cli", "tokenize", "-t", "char", "hello"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == "llmlab: error: No space left on device\n", done.stderr  # no traceback


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="needs /dev/stdout")
def test_dev_stdout_of_a_pipe_is_written_into():
    """/dev/stdout of a process whose output is a pipe resolves to "pipe:[N]": written by its name."""
    import subprocess
    import sys

    code = "from llmlab.fileio import atomic_write_text; atomic_write_text('/dev/stdout', 'through the pipe')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "through the pipe", "")


def test_files_written_together_change_together(tmp_path, monkeypatch):
    """topics --out writes four files: a Ctrl-C or an error part way must not leave a new
    assignments.csv beside an old report.md (or a new folder holding one file)."""
    import signal
    import threading

    import llmlab.fileio as fileio

    out = tmp_path / "topics"
    names = ["assignments.csv", "topics.csv", "map.png", "report.md"]
    assert fileio.atomic_write_files({out / n: b"old " + n.encode() for n in names}) == [out / n for n in names]
    new = {out / n: b"new " + n.encode() for n in names}
    real = fileio._write_beside
    calls = []

    def interrupted_at_the_third(p, data, temps):
        calls.append(p)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(p, data, temps)

    monkeypatch.setattr(fileio, "_write_beside", interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write_files(new)
    assert sorted(os.listdir(out)) == sorted(names)  # no temporary file left
    assert all((out / n).read_bytes() == b"old " + n.encode() for n in names)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write_files({tmp_path / "fresh" / "deeper" / n: b"x" for n in names})
    assert not (tmp_path / "fresh").exists()  # the folders it made are gone again
    monkeypatch.setattr(fileio, "_write_beside", real)

    replace = os.replace

    def signalled(src, dst):  # Ctrl-C while the files are renamed into place: it waits for the last
        replace(src, dst)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(fileio.os, "replace", signalled)
    idle = threading.Event()
    other = threading.Thread(target=idle.wait)  # a thread the OS may hand the signal to (torch has many)
    other.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            fileio.atomic_write_files(new)
    finally:
        idle.set()
        other.join()
    assert all((out / n).read_bytes() == b"new " + n.encode() for n in names)
    monkeypatch.setattr(fileio.os, "replace", replace)
    (tmp_path / "dir").mkdir()
    with pytest.raises(LlmlabError, match="is a folder"):  # checked before anything is written
        fileio.atomic_write_files({out / "report.md": b"newer", tmp_path / "dir": b"x"})
    assert (out / "report.md").read_bytes() == b"new report.md"
