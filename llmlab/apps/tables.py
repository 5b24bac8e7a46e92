"""CSV files in and out for the apps: clear errors on bad files, atomic writes."""

import csv
import io
import os
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.fileio import atomic_write_text, read_text


def read_csv(path: str | Path, columns: list[str],
             encoding: str | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV file that must have ``columns``; one-line errors otherwise.

    ``encoding``: UTF-8 by default, or what a byte-order mark says (Excel's "CSV UTF-8" starts
    with one); name another (e.g. "cp1252" for Excel's plain "CSV" on Windows) when it is not."""
    p = Path(path)
    text = read_text(p, encoding=encoding)
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)  # strict: an unclosed quote is an error
    try:
        header = reader.fieldnames or []
    except csv.Error as e:
        raise LlmlabError(f"{p}: malformed CSV header ({e})") from None
    if not header:
        raise LlmlabError(f"{p}: no header row")
    missing = [c for c in columns if c not in header]
    if missing:
        hint = ""
        if len(header) == 1 and any(d in header[0] for d in ";\t|"):
            hint = " (the file does not look comma-separated: save it as CSV with commas)"
        raise LlmlabError(f"{p}: no column {', '.join(map(repr, missing))}; "
                          f"columns are {', '.join(map(repr, header))}{hint}")
    rows = []
    try:
        for row in reader:
            line = reader.line_num  # where the record ends (a quoted text may span lines)
            if any(row.get(c) is None for c in columns):
                raise LlmlabError(f"{p}: line {line} has fewer fields than the header")
            if None in row:  # DictReader keeps the surplus under None: a text cut at an unquoted comma
                raise LlmlabError(f"{p}: line {line} has more fields than the header ({len(header) + len(row[None])} "
                                  f"for {len(header)}): quote texts that contain commas")
            rows.append(row)
    except csv.Error as e:
        raise LlmlabError(f"{p}: malformed CSV ({e})") from None
    if not rows:
        raise LlmlabError(f"{p}: no data rows, only a header")
    return header, rows


def added_columns(header: list[str], names: list[str]) -> list[str]:
    """Names for columns added to a file with ``header``: each of ``names``, or ``name_2``, ``name_3``, ...
    where the file already has a column of that name (the input's own columns are never overwritten)."""
    taken, out = set(header), []
    for name in names:
        new, k = name, 2
        while new in taken:
            new, k = f"{name}_{k}", k + 1
        taken.add(new)
        out.append(new)
    return out


def write_csv(path: str | Path, header: list[str], rows: list[dict]) -> Path:
    """Write rows atomically (temporary file, then rename)."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore", lineterminator=os.linesep)
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, out.getvalue())
