"""CSV files in and out for the apps: clear errors on bad files, atomic writes."""

import codecs
import csv
import io
import os
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.fileio import atomic_write_bytes, check_encoding, read_text

_SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def delimiter_for(path: str | Path, delimiter: str | None = None) -> str:
    """The field separator: ``delimiter`` ("tab" or "\\t" for a tab), else a tab for .tsv / .tab
    files and a comma for the rest."""
    if delimiter is None:
        return "\t" if Path(path).suffix.lower() in (".tsv", ".tab") else ","
    d = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}.get(delimiter.lower(), delimiter)
    if len(d) != 1 or d in "\"\r\n" or d.isalnum():
        raise LlmlabError(f"the delimiter must be one character such as ';' or 'tab', not {delimiter!r}")
    return d


def read_csv(path: str | Path, columns: list[str], encoding: str | None = None,
             delimiter: str | None = None, flag: str = "--delimiter") -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV file that must have ``columns``; one-line errors otherwise.

    ``encoding``: UTF-8 by default, or what a byte-order mark says (Excel's "CSV UTF-8" starts
    with one); name another (e.g. "cp1252" for Excel's plain "CSV" on Windows) when it is not.
    ``delimiter``: see `delimiter_for` (Excel in many European languages writes ';'); ``flag``
    is the option that sets it, named when the file looks separated by another character."""
    p = Path(path)
    sep = delimiter_for(p, delimiter)
    text = read_text(p, encoding=encoding)
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # a whole document in a cell (default: 128 kB)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=sep, strict=True)  # strict: unclosed quotes
    try:
        header = reader.fieldnames or []
    except csv.Error as e:
        raise LlmlabError(f"{p}: malformed CSV header ({e})") from None
    if not header:
        raise LlmlabError(f"{p}: no header row")
    twice = [c for c in dict.fromkeys(columns) if header.count(c) > 1]
    if twice:
        raise LlmlabError(f"{p}: more than one column is named {', '.join(map(repr, twice))}; rename them apart")
    missing = [c for c in columns if c not in header]
    if missing:
        hint = ""
        if len(header) == 1:  # one field: perhaps another separator
            other = max((d for d in _SEPARATORS if d != sep), key=header[0].count)
            if other in header[0]:
                shown = "tab" if other == "\t" else other
                hint = f" (the file looks {_SEPARATORS[other]}-separated: {flag} {shown!r})"
        near = {c: h for c in missing for h in header if h.strip().casefold() == c.strip().casefold()}
        if near and not hint:  # 'Text ' for 'text': spaces and case are easy to miss in a spreadsheet
            hint = f" (did you mean {' and '.join(repr(h) for h in near.values())}?)"
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
                                  f"for {len(header)}): quote texts that contain {_SEPARATORS.get(sep, repr(sep))}s")
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


def from_a_spreadsheet(path: str | Path, encoding: str | None = None) -> bool:
    """Whether a CSV file looks saved by a spreadsheet or Windows editor: it starts with a byte-order
    mark (Excel's "CSV UTF-8"; Notepad's "Unicode" is UTF-16 with one) or needed a legacy
    ``encoding`` (Excel's plain "CSV" on Windows)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith((codecs.BOM_UTF8, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE,
                        codecs.BOM_UTF16_BE)):
        return True
    if encoding is None or check_encoding(encoding).startswith(("utf-8", "utf-16", "utf-32")):
        return False
    try:
        Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def write_csv(path: str | Path, header: list[str], rows: list[dict], delimiter: str | None = None,
              bom: bool = False) -> Path:
    """Write rows atomically (temporary file, then rename) as UTF-8; tab-separated for a .tsv name.

    ``bom``: start with a byte-order mark, without which Excel reads UTF-8 as the Windows code
    page and garbles every accented letter (see `from_a_spreadsheet`)."""
    return atomic_write_bytes(path, csv_bytes(path, header, rows, delimiter, bom))


def csv_bytes(path: str | Path, header: list[str], rows: list[dict], delimiter: str | None = None,
              bom: bool = False) -> bytes:
    """What `write_csv` writes to ``path`` (whose name may say .tsv)."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore", lineterminator=os.linesep,
                            delimiter=delimiter_for(path, delimiter))
    writer.writeheader()
    writer.writerows(rows)
    return (codecs.BOM_UTF8 if bom else b"") + out.getvalue().encode("utf-8")
