"""Semantic search over the user's files: token chunks, MiniLM vectors and BM25, in SQLite.

Indexing cuts each text into windows of ``chunk_tokens`` tokens (SmolLM2's tokenizer) that
overlap by ``overlap`` tokens, embeds every chunk with MiniLM, and stores text, vector and
a full-text (FTS5) row in one SQLite file, ``DIR/index.sqlite``: no server, one file.
Re-indexing skips files whose bytes are unchanged (SHA-256); files are written in transactions of
about 256 chunks (whole files), so an interrupted run leaves every batch it finished searchable.

Search modes:
- ``dense``: cosine similarity of the query's MiniLM vector to every chunk vector.
- ``bm25``: SQLite FTS5's BM25 over the chunk texts and their file's name (``title``: a query for
  "Kennedy" finds 1961-Kennedy.txt whether or not a chunk says the name; k1 = 1.2, b = 0.75, the
  two columns weighted alike), words reduced to
  their Porter stems (FTS5's ``porter`` tokenizer over ``unicode61``), so "mutations" finds
  "mutation", as search engines' English analysers do (on SciFact: nDCG@10 0.660 -> 0.692).
  Chinese and Japanese are written without spaces, so FTS5 alone would see a whole clause as one
  word and find nothing inside it; runs of Han and kana characters are searched as overlapping
  character bigrams instead (``bm25_text``: 银行卡丢了 -> 银行 行卡 卡丢 丢了), the usual analysis
  for CJK full-text search, and indexed as bigrams and single characters, so that a one-character
  query (猫) finds the character inside longer runs too.
- ``hybrid``: reciprocal rank fusion, ``sum 1 / (60 + rank)`` over the top 100 of both
  (Cormack et al. 2009): meaning from the vectors, exact words from BM25.
A passage found in several places (a file copied under another name, a shared boilerplate
paragraph) is one hit, at its best rank, listing the other places in ``Hit.also``: k hits are
k different passages.
Tests: tests/apps/test_search.py.
"""

import hashlib
import numbers
import os
import re
import reprlib
import shlex
import sqlite3
import weakref
from collections.abc import Callable, Iterable
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from llmlab.errors import LlmlabError
from llmlab.fileio import path_list
from llmlab.plain import plain

INDEX_FILE = "index.sqlite"
BUSY_SECONDS = 30  # how long a write or read waits for another process's write to finish
MODES = ("hybrid", "dense", "bm25")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS docs (id INTEGER PRIMARY KEY, path TEXT UNIQUE, sha256 TEXT);
CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, doc INTEGER, n INTEGER, text TEXT, vector BLOB);
"""
FTS_TABLE = "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, title, tokenize='porter unicode61')"
SCHEMA_VERSION = "5"  # 2: Porter-stemmed full-text table; 3: CJK runs as character bigrams there;
# 4: and as single characters; 5: the file's name searched with each chunk (a title column)
RETOKENIZED = ("2", "3", "4")  # versions whose vectors stand: only their full-text table is rebuilt on opening
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]+")


def bm25_text(text: str, query: bool = False) -> str:
    """The text as the full-text table sees it: every run of Han / kana characters becomes its
    overlapping bigrams, then (not for a ``query``) its single characters; a run of one character
    stays itself. Other text is unchanged."""

    def split(m: re.Match) -> str:
        run = m.group(0)
        if len(run) == 1:
            return f" {run} "
        pairs = [run[i:i + 2] for i in range(len(run) - 1)]
        return " " + " ".join(pairs if query else pairs + list(run)) + " "

    return CJK.sub(split, text)


@dataclass
class Hit:
    path: str
    chunk: int
    score: float
    text: str
    also: list[dict] = field(default_factory=list)  # {"path", "chunk"} of the same text in other places

    def to_dict(self) -> dict:
        """The hit as plain JSON values."""
        return plain(asdict(self))


@dataclass
class IndexReport:
    files: int  # files given
    indexed: int  # files (re)embedded now
    unchanged: int  # the same text as at the last run: kept as it was
    removed: int  # files no longer there (deleted, renamed, now unreadable) taken out of the index
    new_chunks: int  # chunks written now
    total_chunks: int  # chunks in the index
    unreadable: list[str] = field(default_factory=list)  # files found in folders and left out: why (one line each)
    gone: list[str] = field(default_factory=list)  # indexed files no longer on disk and kept (no prune)

    def to_dict(self) -> dict:
        """The report as plain JSON values."""
        return plain(asdict(self))


DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP = 200, 40
MAX_CHUNK_TOKENS = 512  # MiniLM reads 512 positions: the rest of a longer chunk would not be in its vector


def title(name: str) -> str:
    """The words of a document's file name, searched by BM25 with each of its chunks
    ("speeches/1961-Kennedy.txt" -> "1961 Kennedy"); "" for a name with no letter (an id)."""
    words = " ".join(re.split(r"[\W_]+", Path(name).stem)).strip()
    return words if re.search(r"[^\W\d_]", words) else ""


def check_chunking(chunk_tokens: int, overlap: int) -> None:
    if chunk_tokens < 1:
        raise LlmlabError(f"chunks must be at least 1 token long, not {chunk_tokens}")
    if chunk_tokens > MAX_CHUNK_TOKENS:
        raise LlmlabError(f"chunks can be at most {MAX_CHUNK_TOKENS} tokens long, not {chunk_tokens}: MiniLM reads "
                          f"{MAX_CHUNK_TOKENS} tokens, so the end of a longer chunk would not be searched by meaning")
    if not 0 <= overlap < chunk_tokens:
        raise LlmlabError(f"overlap must be in 0..{chunk_tokens - 1}, not {overlap}")


def chunk_text(text: str, tokenizer, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, overlap: int = DEFAULT_OVERLAP
               ) -> list[str]:
    """Windows of at most ``chunk_tokens`` tokens, each starting about ``overlap`` tokens before the
    last one ends. Ends and starts move to the nearest word boundary within ``SNAP`` tokens (a
    token that begins with a space or line break), so that no chunk starts or ends inside a word
    ("...ishes, for it thrives"); no text falls between two chunks."""
    check_chunking(chunk_tokens, overlap)
    ids = tokenizer.encode(text, special=False)
    n = len(ids)
    words = np.flatnonzero(_word_starts(tokenizer)[np.asarray(ids, dtype=np.int64)]) if n else np.zeros(0, int)

    def back(p: int, low: int) -> int:  # the last word start in (low, p] within SNAP of p, else p
        k = int(np.searchsorted(words, p, side="right")) - 1
        return int(words[k]) if k >= 0 and words[k] > low and p - words[k] <= SNAP else p

    def forward(p: int, high: int) -> int:  # the first word start in [p, high] within SNAP of p, else p
        k = int(np.searchsorted(words, p))
        return int(words[k]) if k < len(words) and words[k] <= high and words[k] - p <= SNAP else p

    chunks, start = [], 0
    while True:  # one step per chunk, not per token
        end = n if start + chunk_tokens >= n else back(start + chunk_tokens, start)
        chunks.append(tokenizer.decode(ids[start:end]).strip())
        if end >= n:
            break
        start = forward(max(end - overlap, start + 1), end)
    return [c for c in chunks if c]


SNAP = 8  # tokens a chunk boundary may move to fall between words
_WORD_STARTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _word_starts(tokenizer) -> np.ndarray:
    """For each token id, whether the token begins with whitespace (a word starts there); once per tokenizer."""
    if tokenizer not in _WORD_STARTS:
        _WORD_STARTS[tokenizer] = np.array([tokenizer.decode([i])[:1].isspace() for i in range(tokenizer.vocab_size)],
                                           dtype=bool)
    return _WORD_STARTS[tokenizer]


def check_documents(documents: Iterable[tuple[str | Path, str]]) -> list[tuple[str, str]]:
    """The documents as a list of (path, text) pairs of str, read once; a path may be a ``Path``."""
    try:
        items = list(documents)
    except TypeError:
        raise LlmlabError(f"documents must be (path, text) pairs, not {type(documents).__name__}") from None
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], (str, Path))
                and isinstance(item[1], str)):
            raise LlmlabError(f"document {i}: expected a (path, text) pair of str, not {reprlib.repr(item)}")
        path, text = str(item[0]), item[1]
        if not _utf8(path):
            raise LlmlabError(f"document {i}: the name {path!r} is not valid UTF-8 (rename the file)")
        if out.get(path, text) != text:
            raise LlmlabError(f"document {i}: {path!r} is given twice, with different texts")
        out[path] = text  # the same file twice (a folder and a file in it): once
    return list(out.items())


@contextmanager
def rebuilding(directory: str | Path):
    """A new, empty `Index` in a file of its own in ``directory``, beside the index there (if any),
    which it replaces when the block ends normally (`swap_in`); if the block fails or is
    interrupted, the new file is removed and the old index stands as it was."""
    import tempfile

    Path(directory).mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=INDEX_FILE + ".new-", dir=directory)  # unique: two rebuilds never share
    os.close(fd)  # (SQLite makes an empty file a database)
    fresh = Index(directory, create=True, file=Path(name).name)
    try:
        yield fresh
    except BaseException:
        fresh.close()
        for leftover in (fresh.path, fresh.path.with_name(fresh.path.name + "-journal")):
            leftover.unlink(missing_ok=True)
        raise
    swap_in(fresh, Path(directory) / INDEX_FILE)


def swap_in(fresh: "Index", target: Path) -> None:
    """Replace the index file ``target`` by ``fresh``'s, while holding the old one's write lock (a
    writer to it finishes first). Index objects open on the old file move to the new one at their next call."""
    fresh.close()
    old = None
    if target.is_file():
        old = sqlite3.connect(target, timeout=BUSY_SECONDS, isolation_level=None)
        try:
            old.execute("BEGIN EXCLUSIVE")
        except sqlite3.DatabaseError:  # damaged, or not a database at all: nobody is writing it
            old.close()
            old = None
    try:
        target.with_name(target.name + "-journal").unlink(missing_ok=True)  # the old file's, never the new one's
        os.replace(fresh.path, target)
    finally:
        if old is not None:
            old.close()


def _below(path: str, root: str) -> bool:
    """Whether ``path`` lies under the folder ``root`` and is not hidden there (a hidden file is
    indexed only when named, so a run over its folder does not take it out)."""
    prefix = root.rstrip("/\\") + os.sep
    return path.startswith(prefix) and not any(part.startswith(".") for part in Path(path[len(prefix):]).parts)


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _utf8(name: str) -> bool:
    """Whether ``name`` can be stored as text (a file name of bytes that are not UTF-8 holds surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Index:
    """An on-disk search index in ``directory``.

    Each search reads the index as it is on disk at that moment, in one read transaction: files
    added or removed by this object, another one or another process (`llmlab index`) are seen
    by every mode, however long this object has been open; after a rebuild elsewhere
    (`llmlab index --rebuild`, which puts a new file in place of the old one) it reads the new file."""

    def __init__(self, directory: str | Path, create: bool = False, file: str = INDEX_FILE):
        self.directory = Path(directory)
        path = self.path = self.directory / file
        missing = f"{self.directory}: no index here (build one with `llmlab index PATH... --index DIR`)"
        if self.directory.is_file():
            hint = f": give its folder, {self.directory.parent}" if self.directory.name == INDEX_FILE else ""
            raise LlmlabError(f"{self.directory}: a file, not an index folder{hint}")
        if not path.is_file() and not create:
            raise LlmlabError(missing)
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, timeout=BUSY_SECONDS)
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and not {"meta", "docs"} <= tables:
                self.db.close()
                raise LlmlabError(f"{path}: not an index (an SQLite file of other tables)")
            if not tables and not create:
                self.db.close()
                raise LlmlabError(missing)
            version = self._version(tables)
            if version is None:  # a new index (or a file a first run left without tables)
                with self._writing():
                    self.db.executescript(SCHEMA)
                    self.db.execute(FTS_TABLE)
                    with self.db:
                        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)",
                                        (SCHEMA_VERSION,))
                version = SCHEMA_VERSION
            elif version in RETOKENIZED:  # the vectors stand; only the full-text table changes: rebuild it
                with self._writing("it needs a one-time upgrade to this llmlab's format: run `llmlab index` on it "
                                   "once where it can be written"):
                    self._retokenize()
                version = SCHEMA_VERSION
        except sqlite3.DatabaseError as e:
            way_out = "" if isinstance(e, sqlite3.OperationalError) else (  # busy, locked, unreadable: not damaged
                f"; build it again with `llmlab index PATH... --index {shlex.quote(str(self.directory))} --rebuild`")
            raise LlmlabError(f"{path}: not a readable index ({self._reason(e)}){way_out}") from None
        if version != SCHEMA_VERSION:  # checked before anything is written into it
            newer = version.isdigit() and int(version) > int(SCHEMA_VERSION)
            raise LlmlabError(f"{path}: an index in {'a newer' if newer else 'an older'} format (version {version}, "
                              f"this llmlab reads {SCHEMA_VERSION}); "
                              + ("use the llmlab that built it, or " if newer else "")
                              + "build it again with `llmlab index PATH... --index DIR --rebuild`")
        self._vectors = None  # (`_state` they were read at, chunk ids, unit vectors)
        self._copy_groups = None  # (`_state` they were read at, `_copies`)
        self._encoder = None
        self._file = _identity(path)  # the file opened: `llmlab index --rebuild` elsewhere replaces it
        self._closed = False
        self._queries: dict[str, np.ndarray] = {}  # query -> unit vector (the last one, or a batch `prepare` embedded)

    def _version(self, tables: set[str]) -> str | None:
        """The index's format version; None for a new index (nothing in it yet)."""
        if not tables:
            return None
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is not None:
            return row[0]
        has_docs = self.db.execute("SELECT 1 FROM docs LIMIT 1").fetchone() is not None
        return "1" if has_docs else None  # written before versions were recorded, or never filled

    def _retokenize(self) -> None:
        with self.db:
            self.db.execute("DROP TABLE IF EXISTS chunks_fts")
            self.db.execute(FTS_TABLE)
            rows = self.db.execute("SELECT chunks.id, chunks.text, docs.path FROM chunks "
                                   "JOIN docs ON docs.id = chunks.doc").fetchall()
            self.db.executemany("INSERT INTO chunks_fts (rowid, text, title) VALUES (?, ?, ?)",
                                ((i, bm25_text(t), bm25_text(title(p))) for i, t, p in rows))
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))

    def close(self) -> None:
        self.db.close()
        self._closed = True

    def _follow(self) -> None:
        """Read the index file now at this path: after a rebuild (a new file put in place of the one
        opened), reopen it. A file since removed leaves the open one as it was."""
        now = _identity(self.path)
        if now is None or now == self._file or self._closed:
            return
        encoder, queries = self._encoder, self._queries
        self.db.close()
        self.__init__(self.directory, file=self.path.name)
        self._encoder, self._queries = encoder, queries

    def _reason(self, e: sqlite3.DatabaseError) -> str:
        """SQLite's error in the words a user acts on."""
        text = str(e)
        if "locked" in text or "busy" in text:
            return f"it is busy: another llmlab is writing to it; try again when that is done ({text})"
        return text

    @contextmanager
    def _writing(self, read_only: str = "searching it works; indexing needs a place that can be written"):
        """SQLite's write failures as one clear error each; what was committed before stays."""
        try:
            yield
        except sqlite3.DatabaseError as e:
            raise self._failure(e, read_only) from None

    def _failure(self, e: Exception, read_only: str = "") -> LlmlabError:
        """An SQLite error (or vectors that do not parse) as the one-line error a user acts on."""
        text = str(e)
        if isinstance(e, sqlite3.ProgrammingError):
            return LlmlabError(f"{self.path}: {e} (this Index was closed)")
        if isinstance(e, sqlite3.IntegrityError):
            return LlmlabError(f"{self.path}: another llmlab changed the same file in the index at the same moment "
                               f"({e}); run again")
        if isinstance(e, sqlite3.OperationalError):
            if "readonly" in text or "read-only" in text:
                return LlmlabError(f"{self.path}: the index is read-only here; {read_only}")
            if "full" in text:
                return LlmlabError(f"{self.path}: the disk is full; the files indexed before that are kept (the "
                                   "index is whole): free some space and run `llmlab index` again")
            if "locked" in text or "busy" in text:
                return LlmlabError(f"{self.path}: {self._reason(e)}")
        return LlmlabError(f"{self.path}: the index is damaged ({type(e).__name__}: {e}); build it again with "
                           "`llmlab index PATH... --index DIR --rebuild`")

    def __repr__(self) -> str:
        try:
            files, chunks = self.db.execute("SELECT (SELECT COUNT(*) FROM docs), (SELECT COUNT(*) FROM chunks)"
                                            ).fetchone()
        except (sqlite3.Error, AttributeError):  # closed, locked, damaged, never opened: the folder says which
            return f"<Index {self.directory}>"
        return f"<Index {self.directory}: {files} files, {chunks} chunks>"

    def encoder(self):
        if self._encoder is None:
            from llmlab.weights.registry import load_encoder

            self._encoder = load_encoder("minilm", precision="auto")
        return self._encoder

    # --- building ---------------------------------------------------------------------------
    def chunking(self) -> tuple[int, int] | None:
        """(chunk tokens, overlap) the index was built with; None for an index with no files yet."""
        self._follow()
        rows = dict(self.db.execute("SELECT key, value FROM meta WHERE key IN ('chunk_tokens', 'overlap')"))
        if len(rows) == 2:
            return int(rows["chunk_tokens"]), int(rows["overlap"])
        has_docs = self.db.execute("SELECT 1 FROM docs LIMIT 1").fetchone() is not None
        return (DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP) if has_docs else None  # built before they were recorded

    def clear(self) -> None:
        """Take every file out of the index (the chunking is chosen again at the next `add`)."""
        self._follow()
        with self._writing(), self.db:
            for table in ("chunks_fts", "chunks", "docs"):
                self.db.execute(f"DELETE FROM {table}")
            self.db.execute("DELETE FROM meta WHERE key IN ('chunk_tokens', 'overlap')")
        self._vectors = None

    def add(self, documents: Iterable[tuple[str | Path, str]], chunk_tokens: int | None = None,
            overlap: int | None = None, progress: bool = False, folders: list[str | Path] = ()) -> IndexReport:
        """Index (path or id, text) pairs, from any iterable; unchanged ones are kept as they are.

        ``chunk_tokens`` / ``overlap`` (default: the index's own, or 200 / 40 for a new index) must
        match the index's: its chunks are all cut one way. ``folders``: folders whose files are
        ``documents``, as read now; a file indexed before under one of them that is not among
        ``documents`` (deleted, renamed, no longer readable) is removed, so that search never cites it."""
        documents = check_documents(documents)  # before anything is written
        self._follow()
        with self._writing():
            return self._add(documents, chunk_tokens, overlap, progress, folders)

    def _add(self, documents: list[tuple[str, str]], chunk_tokens: int | None, overlap: int | None, progress: bool,
             folders) -> IndexReport:
        from llmlab.tokenize import load_tokenizer

        built = self.chunking()
        chunk_tokens = chunk_tokens if chunk_tokens is not None else (built or (DEFAULT_CHUNK_TOKENS,))[0]
        overlap = overlap if overlap is not None else (built or (0, DEFAULT_OVERLAP))[1]
        check_chunking(chunk_tokens, overlap)
        if built is not None and built != (chunk_tokens, overlap):
            raise LlmlabError(
                f"{self.directory}: this index cuts files into {built[0]}-token chunks overlapping by {built[1]}, "
                f"not {chunk_tokens} / {overlap}; index into a new folder, or rebuild this one with --rebuild")
        if built is None or self.db.execute("SELECT 1 FROM meta WHERE key = 'chunk_tokens'").fetchone() is None:
            with self.db:  # (only when new: an index with nothing to change is not written, read-only ones too)
                self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                    [("chunk_tokens", str(chunk_tokens)), ("overlap", str(overlap))])
        removed = self._remove_missing(folders, {name for name, _ in documents}) if folders else 0
        tokenizer = load_tokenizer("smollm2")
        indexed = unchanged = written = 0
        pending: list[tuple] = []  # (name, digest, chunks): embedded together, ~256 chunks at a time

        def flush():
            nonlocal indexed, written
            if not pending:  # (an index with nothing to change is not written)
                return
            texts = [c for *_, chunks in pending for c in chunks]
            big = progress and len(texts) > 2000  # a large file: its own bar, the files' one stands still meanwhile
            vectors = iter(self.encoder().encode(texts, progress=big).numpy().astype(np.float32)) if texts else iter(())
            with self.db:  # one transaction per batch (each commit waits for the disk, ~10 ms), holding the
                self.db.execute("BEGIN IMMEDIATE")  # write lock from its first read: the entries read are the ones
                for name, digest, chunks in pending:  # replaced (not older ones another run replaced meanwhile)
                    old = self.db.execute("SELECT id FROM docs WHERE path = ?", (name,)).fetchone()
                    if old is not None:
                        self._delete(old[0])
                        self.db.execute("DELETE FROM docs WHERE id = ?", (old[0],))
                    doc = self.db.execute("INSERT INTO docs (path, sha256) VALUES (?, ?)", (name, digest)).lastrowid
                    name_words = bm25_text(title(name))
                    for n, chunk in enumerate(chunks):
                        cid = self.db.execute("INSERT INTO chunks (doc, n, text, vector) VALUES (?, ?, ?, ?)",
                                              (doc, n, chunk, next(vectors).tobytes())).lastrowid
                        self.db.execute("INSERT INTO chunks_fts (rowid, text, title) VALUES (?, ?, ?)",
                                        (cid, bm25_text(chunk), name_words))
            indexed += len(pending)
            written += sum(len(chunks) for *_, chunks in pending)
            pending.clear()

        for name, text in tqdm(documents, desc="indexing", unit="file", disable=not progress):
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            row = self.db.execute("SELECT sha256 FROM docs WHERE path = ?", (name,)).fetchone()
            if row and row[0] == digest:
                unchanged += 1
                continue
            pending.append((name, digest, chunk_text(text, tokenizer, chunk_tokens, overlap)))
            if sum(len(p[2]) for p in pending) >= 256:
                flush()
        flush()
        self._vectors = None
        return IndexReport(len(documents), indexed, unchanged, removed, written, self.chunk_count())

    def _remove_missing(self, folders: list[str | Path], present: set[str]) -> int:
        """Remove the files indexed under ``folders`` that are not in ``present``; how many."""
        roots = [str(Path(f).resolve()) for f in folders]
        gone = [(doc, path) for doc, path in self.db.execute("SELECT id, path FROM docs")
                if path not in present and any(_below(path, root) for root in roots)]
        with self.db:  # one transaction (a commit per file cost ~10 ms each)
            for doc, _ in gone:
                self._delete(doc)
                self.db.execute("DELETE FROM docs WHERE id = ?", (doc,))
        self._vectors = None
        return len(gone)

    def gone(self) -> list[str]:
        """Indexed files no longer on disk (moved, renamed or deleted since, anywhere): absolute paths
        only; names that are not paths (ids given from Python) are never gone."""
        self._follow()
        return [path for (path,) in self.db.execute("SELECT path FROM docs ORDER BY path")
                if os.path.isabs(path) and not os.path.isfile(path)]

    def chunk_count(self) -> int:
        self._follow()
        return self._count()

    def prune(self) -> int:
        """Take out every file `gone` lists, so that search never cites it; how many."""
        self._follow()
        with self._writing():
            paths = self.gone()
            with self.db:  # one transaction
                if paths:
                    self.db.execute("BEGIN IMMEDIATE")
                for path in paths:
                    row = self.db.execute("SELECT id FROM docs WHERE path = ?", (path,)).fetchone()
                    if row is not None:  # (None: another run took it out meanwhile)
                        self._delete(row[0])
                        self.db.execute("DELETE FROM docs WHERE id = ?", (row[0],))
        self._vectors = None
        return len(paths)

    def _delete(self, doc: int) -> None:
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE doc = ?", (doc,))]
        self.db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        self.db.execute("DELETE FROM chunks WHERE doc = ?", (doc,))

    # --- searching -------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5, mode: str = "hybrid") -> list[Hit]:
        if mode not in MODES:
            raise LlmlabError(f"unknown search mode {mode!r} (choose from {', '.join(MODES)})")
        if not isinstance(query, str):
            raise LlmlabError(f"the query must be a str, not {type(query).__name__}")
        if not query.strip():
            raise LlmlabError("empty query")
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise LlmlabError(f"k must be a whole number of hits (an int), at least 1, not {k!r}")
        if k < 1:
            raise LlmlabError(f"k must be at least 1, not {k}")
        try:
            self._follow()
            return self._search(query, int(k), mode)
        except (sqlite3.DatabaseError, ValueError, KeyError) as e:  # busy, closed; vectors cut short, rows missing
            raise self._failure(e) from None

    @contextmanager
    def _snapshot(self):
        """One read transaction: a search sees the index as it was when it began, whoever writes meanwhile."""
        if self.db.in_transaction:  # the caller's own, still open: read inside it
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.rollback()  # nothing was written

    def _search(self, query: str, k: int, mode: str) -> list[Hit]:
        if mode != "bm25" and not self._empty():
            self._query_vector(query)  # embedded first: while the snapshot below is read, writers wait
        with self._snapshot():
            if self._empty():
                raise LlmlabError(f"{self.directory}: the index is empty; add files with `llmlab index`")
            copies = self._copies()
            depth, fusing = k, 100
            while True:  # k different passages: look deeper while copies of one crowd the list
                ranked = self._ranked(query, depth, mode, fusing)
                picked, groups = [], set()
                for cid, score in ranked:
                    group = copies.get(cid, (cid,))[0]
                    if group not in groups:
                        groups.add(group)
                        picked.append((cid, score))
                if len(picked) >= k or len(picked) == len(ranked):  # enough, or no copies: the ranking as it is
                    break
                if len(ranked) == depth:
                    depth *= 4
                elif mode == "hybrid" and fusing < (total := self._count()):  # the fused top lists ran out
                    fusing = min(4 * fusing, total)
                else:
                    break
            return self._hits(picked[:k], copies)

    def _ranked(self, query: str, depth: int, mode: str, fusing: int = 100) -> list[tuple[int, float]]:
        """The best ``depth`` (chunk id, score) pairs, best first; hybrid fuses the top ``fusing`` of each."""
        if mode == "dense":
            return self._dense(query, depth)
        if mode == "bm25":
            return self._bm25(query, depth)
        fused: dict[int, float] = {}
        for ranking in (self._dense(query, fusing), self._bm25(query, fusing)):
            for rank, (cid, _) in enumerate(ranking):
                fused[cid] = fused.get(cid, 0.0) + 1 / (60 + rank + 1)
        return sorted(fused.items(), key=lambda kv: -kv[1])[:depth]

    def _empty(self) -> bool:
        return self.db.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is None

    def _dense(self, query: str, k: int) -> list[tuple[int, float]]:
        version = self._state()
        if self._vectors is None or self._vectors[0] != version:
            rows = self.db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
            ids = np.array([r[0] for r in rows])
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
            self._vectors = version, ids, matrix
        _, ids, matrix = self._vectors
        scores = matrix @ self._query_vector(query)
        top = np.argsort(-scores)[:k]
        return [(int(ids[i]), float(scores[i])) for i in top]

    def _query_vector(self, query: str) -> np.ndarray:
        """The unit MiniLM vector of ``query``; the last one is kept, since asking often searches
        the same question twice (hybrid for the passages, dense for their relevance)."""
        if query not in self._queries:
            self._queries = {query: self._embed_queries([query])[0]}
        return self._queries[query]

    def prepare(self, queries: list[str], progress: bool = False) -> None:
        """Embed ``queries`` in batches now, for the searches that follow (many queries: one encoder call per
        batch instead of one per query, about thirty times faster)."""
        todo = list(dict.fromkeys(q for q in queries if isinstance(q, str) and q.strip()))
        if todo:
            self._queries = dict(zip(todo, self._embed_queries(todo, progress and len(todo) > 1000)))

    def _embed_queries(self, queries: list[str], progress: bool = False) -> np.ndarray:
        q = self.encoder().encode(queries, progress=progress).numpy()
        return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)

    def _bm25(self, query: str, k: int) -> list[tuple[int, float]]:
        words = re.findall(r"\w+", bm25_text(query, query=True).lower())
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in dict.fromkeys(words))
        rows = self.db.execute("SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
                               "ORDER BY bm25(chunks_fts) LIMIT ?", (match, k)).fetchall()
        return [(int(r), -float(s)) for r, s in rows]  # FTS5 scores are negated BM25

    def _state(self) -> tuple[int, int]:
        """Changes with every write to the index: data_version when another connection commits,
        total_changes with this one's own writes (also those of an add interrupted half-way)."""
        return self.db.execute("PRAGMA data_version").fetchone()[0], self.db.total_changes

    def _count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def _copies(self) -> dict[int, tuple[int, ...]]:
        """chunk id -> the ids of all chunks with its text, ascending, for each text held more than once
        (a file copied under another name); read once per change to the index."""
        version = self._state()
        if self._copy_groups is None or self._copy_groups[0] != version:
            groups = {}
            for (ids,) in self.db.execute("SELECT group_concat(id) FROM chunks GROUP BY text HAVING count(*) > 1"):
                members = tuple(sorted(int(i) for i in ids.split(",")))
                groups.update(dict.fromkeys(members, members))
            self._copy_groups = version, groups
        return self._copy_groups[1]

    def _hits(self, ranked: list[tuple[int, float]], copies: dict[int, tuple[int, ...]]) -> list[Hit]:
        """Hits for (chunk id, score) pairs, in their order, each with the other places of its text."""
        wanted = list(dict.fromkeys(i for cid, _ in ranked for i in copies.get(cid, (cid,))))
        rows = {}
        for start in range(0, len(wanted), 500):  # (SQLite limits the variables of one statement)
            batch = wanted[start:start + 500]
            rows.update({cid: (path, n, text) for cid, path, n, text in self.db.execute(
                f"SELECT chunks.id, docs.path, chunks.n, chunks.text FROM chunks JOIN docs ON docs.id = chunks.doc "
                f"WHERE chunks.id IN ({','.join('?' * len(batch))})", batch)})
        hits = []
        for cid, score in ranked:
            path, n, text = rows[cid]
            also = sorted((rows[i][0], rows[i][1]) for i in copies.get(cid, ()) if i != cid)
            hits.append(Hit(path, n, score, text, [{"path": p, "chunk": c} for p, c in also]))
        return hits


SCORE_KINDS = {"dense": "cosine similarity of MiniLM vectors", "bm25": "BM25",
               "hybrid": "reciprocal rank fusion of dense and BM25 ranks"}


def snippet(text: str, query: str = "", limit: int = 300) -> str:
    """At most about ``limit`` characters of ``text`` on one line, cut between words and marked
    "…" where cut: from the sentence that shares the most words with ``query`` (the start when none
    does), so that the part of a passage that matched is what is shown."""
    flat = " ".join(text.split())
    words = {w for w in re.findall(r"\w+", query.lower()) if len(w) > 2}
    start = 0
    if words:
        starts = [0] + [m.end() for m in re.finditer(r"[.!?。！？][\"'”’)\]]?\s+", flat)]
        shared = [len(words & set(re.findall(r"\w+", flat[a:b].lower())))
                  for a, b in zip(starts, starts[1:] + [len(flat)])]
        if max(shared) > 0:
            start = starts[shared.index(max(shared))]
    piece = flat[start:]
    if len(piece) > limit:
        cut = piece.rfind(" ", 0, limit + 1)
        piece = piece[:cut if cut > limit // 2 else limit].rstrip(" ,;:") + "…"
    return ("…" if start else "") + piece


def index_files(paths: str | Path | list[str | Path], directory: str | Path, chunk_tokens: int | None = None,
                overlap: int | None = None, encoding: str | None = None, rebuild: bool = False, prune: bool = False,
                progress: bool = False, unreadable: Callable[[list[str]], None] | None = None) -> IndexReport:
    """Index the documents in ``paths`` (files, and folders searched for .txt, .md, .html, .pdf,
    .docx) into the index folder ``directory``, made when new: what `llmlab index` does.

    Files unchanged since the last run are skipped, and files of the folders given that are no
    longer there are taken out. A file named explicitly that cannot be read is an error; one found
    in a folder is left out with its reason in ``report.unreadable`` (``unreadable`` is called with
    those reasons once the files are read, before the embedding starts). ``chunk_tokens`` /
    ``overlap``: default the index's own (200 / 40 for a new one); changing them needs ``rebuild``,
    which builds the index anew beside the old one, replaced only when complete. ``prune`` also
    takes out indexed files outside the folders given that no longer exist (a folder moved);
    without it they are listed in ``report.gone``."""
    if chunk_tokens is not None:  # refused before any file is read or the index is made
        check_chunking(chunk_tokens, overlap or 0)
    skipped: list[str] = []
    folders = [p for p in path_list(paths) if Path(p).is_dir()]
    target = Path(directory) / INDEX_FILE
    index = None  # nothing is made before the files are read; a rebuild never opens the old index
    if not rebuild and target.is_file() and target.stat().st_size > 0:  # (0 bytes: a first run that failed)
        index = Index(directory)
    try:
        # a folder emptied since it was indexed is not an error: its files leave the index
        emptied = bool(folders) and index is not None and index.chunking() is not None
        documents = read_documents(paths, skipped, encoding, allow_none=emptied)
        if skipped and unreadable is not None:
            unreadable(skipped)
        if not documents and skipped and not emptied:
            raise LlmlabError(f"none of the {len(skipped)} file(s) found could be read "
                              f"({'reasons above' if unreadable is not None else skipped[0]}); nothing indexed")
    except BaseException:
        if index is not None:
            index.close()
        raise
    with rebuilding(directory) if rebuild else closing(index or Index(directory, create=True)) as index:
        report = index.add(documents, chunk_tokens, overlap, progress=progress, folders=folders)
        if prune:
            report.removed += index.prune()
            report.total_chunks = index.chunk_count()
        else:
            report.gone = index.gone()
    report.unreadable = skipped
    return report


def search_index(query: str, directory: str | Path, k: int = 5, mode: str = "hybrid") -> list[Hit]:
    """The ``k`` best passages for ``query`` in the index folder ``directory`` (modes ``hybrid``,
    ``dense``, ``bm25``): what `llmlab search` does. For many queries, keep an `Index` open
    and call its ``search`` (and ``prepare`` to embed the queries in batches)."""
    with closing(Index(directory)) as index:
        return index.search(query, k=k, mode=mode)


def read_documents(paths: str | Path | list[str | Path], skipped: list[str] | None = None,
                   encoding: str | None = None, allow_none: bool = False) -> list[tuple[str, str]]:
    """(path, text) of every document given or found under the folders given (.txt, .md, .html, .pdf, .docx).

    ``encoding``: of the text files (`read_document`'s default: UTF-8 or what the file marks).

    Inside a folder, hidden files and folders (a name that starts with ".") are left out; a
    file reached twice (a folder and a file in it) is read once.

    A file named explicitly that cannot be read is an error. A file found in a folder that
    cannot be read (empty, not UTF-8, a scanned PDF...) is an error too, unless ``skipped`` is
    a list: then its one-line reason is appended there and the file is left out."""
    from llmlab.apps.documents import SUFFIXES, read_document
    from llmlab.fileio import check_encoding

    paths = path_list(paths)
    if encoding is not None:
        check_encoding(encoding)  # a wrong name is one error, not a reason to skip every file
    found: dict[str, tuple[Path, bool]] = {}  # resolved path -> (file, named explicitly); each file once
    for p in map(Path, paths):
        if p.is_dir():  # hidden files and folders (.git, .cache...) only when named
            files = [f for f in sorted(p.rglob("*")) if f.suffix.lower() in SUFFIXES
                     and not any(part.startswith(".") for part in f.relative_to(p).parts) and f.is_file()]
            for f in files:
                found.setdefault(str(f.resolve()), (f, False))
        elif p.is_file():
            found[str(p.resolve())] = (p, True)
        else:
            raise LlmlabError(f"{p}: no such file or folder")
    if not found and not allow_none:  # allow_none: folders emptied since they were indexed
        raise LlmlabError(f"no documents to index ({', '.join(SUFFIXES)})")
    documents = []
    for name, (f, explicit) in found.items():
        try:
            if not _utf8(name):
                raise LlmlabError(f"{name.encode('utf-8', 'replace').decode()}: the file's name is not UTF-8 text "
                                  "(rename the file)")
            documents.append((name, read_document(f, encoding)))
        except LlmlabError as e:
            if explicit or skipped is None:
                raise
            skipped.append(str(e))
    return documents
