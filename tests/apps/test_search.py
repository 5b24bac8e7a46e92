"""Index and search small files written by the test: modes, incremental re-indexing, errors."""

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from llmlab.apps.search import SCHEMA_VERSION, Index, chunk_text, read_documents
from llmlab.cli import main
from llmlab.errors import LlmlabError
from tests.apps.test_documents import docx

FILES = {
    "paris.txt": "Paris is the capital and largest city of France. The Eiffel Tower stands on the Champ de Mars.",
    "tea.md": "# Tea\n\nGreen tea is made from unoxidized leaves. Brewing it below boiling keeps it from bitterness.",
    "python.txt": "Python is a programming language. Its list comprehensions build lists from iterables in one line.",
}


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize("mode, query", [
    ("dense", "Which city is the French capital?"),
    ("bm25", "Eiffel Tower"),
    ("hybrid", "how to brew green tea"),
])
def test_each_mode_finds_the_right_file(corpus, tmp_path, mode, query):
    index = Index(tmp_path / "ix", create=True)
    index.add(read_documents([corpus]))
    expected = {"dense": "paris.txt", "bm25": "paris.txt", "hybrid": "tea.md"}[mode]
    hits = index.search(query, k=3, mode=mode)
    assert hits[0].path.endswith(expected) and hits[0].score > 0


def test_dense_search_matches_meaning_without_shared_words(corpus, tmp_path):
    index = Index(tmp_path / "ix", create=True)
    assert read_documents(str(corpus)) == read_documents(corpus) == read_documents([corpus])  # one folder
    index.add(read_documents([corpus]))
    # the query shares no word with python.txt ("a" and "in" aside), yet its meaning is closest
    assert index.search("coding with a scripting language", mode="dense")[0].path.endswith("python.txt")


def test_reindexing_skips_unchanged_files(corpus, tmp_path):
    index = Index(tmp_path / "ix", create=True)
    first = index.add(read_documents([corpus]))
    assert (first.indexed, first.unchanged) == (3, 0) and first.total_chunks == 3
    (corpus / "tea.md").write_text("Black tea is fully oxidized.", encoding="utf-8")
    second = Index(tmp_path / "ix").add(read_documents([corpus]))
    assert (second.indexed, second.unchanged, second.total_chunks) == (1, 2, 3)
    assert Index(tmp_path / "ix").search("oxidized black tea", mode="bm25")[0].text == "Black tea is fully oxidized."


def test_an_open_index_sees_what_another_one_writes(corpus, tmp_path):
    """A notebook holds an Index while `llmlab index` (another connection) adds or clears files: every
    search, dense ones too, reads the index as it is now, not the vectors it read before."""
    held = Index(tmp_path / "ix", create=True)
    held.add(read_documents([corpus]))
    assert held.search("green tea", k=1, mode="dense")[0].path.endswith("tea.md")  # its vectors are read now
    other = Index(tmp_path / "ix")
    other.add([("coffee.txt", "Coffee should brew for four minutes.")])
    assert held.search("coffee", k=1, mode="dense")[0].path == "coffee.txt"
    other.clear()
    other.add([("moon.txt", "The Moon orbits the Earth every 27 days.")])
    for mode in ("dense", "hybrid", "bm25"):
        assert [h.path for h in held.search("the Moon", k=5, mode=mode)] == ["moon.txt"], mode
    other.clear()
    with pytest.raises(LlmlabError, match="the index is empty"):
        held.search("the Moon", mode="dense")
    assert repr(held) == f"<Index {tmp_path / 'ix'}: 0 files, 0 chunks>"


def test_an_add_interrupted_half_way_leaves_search_working(corpus, tmp_path, monkeypatch):
    """Files written before the interruption are in the index and found; the vectors read before it are not
    used (they held chunks the add had replaced: "the index is damaged")."""
    index = Index(tmp_path / "ix", create=True)
    index.add(read_documents([corpus]))
    assert index.search("green tea", k=1, mode="dense")[0].path.endswith("tea.md")
    encode = index.encoder().encode
    calls = []

    def interrupted(texts, *args, **kwargs):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return encode(texts, *args, **kwargs)

    monkeypatch.setattr(index.encoder(), "encode", interrupted)
    changed = [(f"{path}", text + " Changed.") for path, text in read_documents([corpus])]
    many = [(f"extra{i}.txt", "Filler text about nothing much. " * 60) for i in range(120)]  # two flushes of 256
    with pytest.raises(KeyboardInterrupt):
        index.add(changed + many)
    monkeypatch.undo()
    for mode in ("dense", "hybrid"):
        assert index.search("green tea", k=1, mode=mode)[0].path.endswith("tea.md"), mode


def test_add_reads_any_iterable_of_pairs_once(corpus, tmp_path):
    """A generator is read once, for indexing and for finding the files gone from ``folders`` alike;
    a path may be a Path."""
    def files(skip=""):
        return ((p.resolve(), p.read_text(encoding="utf-8")) for p in sorted(corpus.iterdir()) if p.name != skip)

    index = Index(tmp_path / "ix", create=True)
    report = index.add(files(), folders=[corpus])
    assert (report.files, report.indexed, report.removed, report.total_chunks) == (3, 3, 0, 3)
    assert {Path(h.path).name for h in index.search("tea Paris Python", k=5)} == set(FILES)
    report = index.add(files(skip="tea.md"), folders=[corpus])
    assert (report.files, report.unchanged, report.removed, report.total_chunks) == (2, 2, 1, 2)
    assert repr(index) == f"<Index {tmp_path / 'ix'}: 2 files, 2 chunks>"
    index.db.close()
    assert repr(index) == f"<Index {tmp_path / 'ix'}>"  # a closed (or damaged) index still names its folder


def test_add_refuses_what_is_not_a_path_text_pair_before_writing(tmp_path):
    index = Index(tmp_path / "ix", create=True)
    for bad in (("b.txt", None), {"path": "b.txt", "text": "x"}, ("b.txt", "text", "extra"), ("b.txt",), "ab",
                (5, "text"), ("b.txt", b"bytes"), None):
        with pytest.raises(LlmlabError, match=r"^document 1: expected a \(path, text\) pair of str, not "):
            index.add([("a.txt", "Some text."), bad])
    with pytest.raises(LlmlabError, match=r"documents must be \(path, text\) pairs, not int"):
        index.add(5)
    assert index.chunking() is None and repr(index) == f"<Index {tmp_path / 'ix'}: 0 files, 0 chunks>"


def test_files_gone_from_a_folder_leave_the_index(corpus, tmp_path, capsys):
    """Deleted, renamed and no-longer-readable files are taken out, so search and ask never cite them;
    files indexed from another folder stay."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "moon.txt").write_text("The Moon orbits the Earth every 27 days.", encoding="utf-8")
    index = str(tmp_path / "ix")
    for folder in (corpus, other):
        assert main(["index", str(folder), "--index", index, "--quiet"]) == 0
    (corpus / "paris.txt").rename(corpus / "france.txt")
    (corpus / "python.txt").unlink()
    (corpus / "tea.md").write_text("", encoding="utf-8")  # now unreadable: empty
    capsys.readouterr()
    assert main(["index", str(corpus), "--index", index, "--quiet", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["indexed"], report["unchanged"], report["removed"]) == (1, 0, 3)
    paths = {Path(h.path).name for h in Index(index).search("Paris tea Python Moon", k=10)}
    assert paths == {"france.txt", "moon.txt"}
    for f in corpus.iterdir():  # a folder emptied: its files leave the index, no error
        f.unlink()
    assert main(["index", str(corpus), "--index", index, "--quiet", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 1  # france.txt (the empty tea.md was out already)
    assert {Path(h.path).name for h in Index(index).search("Paris tea Python Moon", k=10)} == {"moon.txt"}
    assert main(["index", str(corpus), "--index", str(tmp_path / "new"), "--quiet"]) == 2  # nothing to build from
    assert "no documents to index" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_chunking_is_the_index_own(corpus, tmp_path, capsys):
    """An index cuts all its files one way: other settings are refused unless it is rebuilt; chunks
    longer than MiniLM reads are refused."""
    index = str(tmp_path / "ix")
    assert main(["index", str(corpus), "--index", index, "--quiet", "--chunk-tokens", "8", "--overlap", "2"]) == 0
    assert Index(index).chunking() == (8, 2)
    (corpus / "moon.txt").write_text("The Moon orbits the Earth every 27 days, as seen from here.", encoding="utf-8")
    assert main(["index", str(corpus), "--index", index, "--quiet"]) == 0  # the index's own settings
    assert max(len(h.text.split()) for h in Index(index).search("Moon orbits", k=20, mode="bm25")) <= 8
    capsys.readouterr()
    assert main(["index", str(corpus), "--index", index, "--quiet", "--chunk-tokens", "100"]) == 2
    assert "8-token chunks overlapping by 2, not 100 / 2" in capsys.readouterr().err
    assert main(["index", str(corpus), "--index", index, "--quiet", "--chunk-tokens", "100", "--rebuild"]) == 0
    assert Index(index).chunking() == (100, 40) and Index(index).search("Moon", k=1)[0].text.endswith("from here.")
    assert main(["index", str(corpus), "--index", str(tmp_path / "big"), "--quiet", "--chunk-tokens", "5000"]) == 2
    assert "at most 512 tokens long" in capsys.readouterr().err


def test_damaged_or_foreign_index_is_one_line(corpus, tmp_path, capsys):
    import shutil

    index = tmp_path / "ix"
    Index(index, create=True).add(read_documents([corpus]))
    for name, damage in (("cut", "UPDATE chunks SET vector = substr(vector, 1, 100) WHERE id = 2"),
                         ("nodocs", "DROP TABLE docs"), ("newer", "UPDATE meta SET value = '99' WHERE key = 'schema'")):
        shutil.copytree(index, tmp_path / name)
        db = sqlite3.connect(tmp_path / name / "index.sqlite")
        db.execute(damage)
        db.commit()
        db.close()
        assert main(["search", "green tea", "--index", str(tmp_path / name), "--mode", "dense"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert {"cut": "the index is damaged", "nodocs": "not an index", "newer": "newer format"}[name] in err
    (tmp_path / "zero").mkdir()
    (tmp_path / "zero" / "index.sqlite").write_bytes(b"")  # searching does not make it an index
    assert main(["search", "tea", "--index", str(tmp_path / "zero")]) == 2
    assert "no index here" in capsys.readouterr().err and (tmp_path / "zero" / "index.sqlite").stat().st_size == 0
    (tmp_path / "noise").mkdir()
    (tmp_path / "noise" / "index.sqlite").write_bytes(bytes(range(256)) * 16)  # not SQLite at all
    assert main(["search", "tea", "--index", str(tmp_path / "noise")]) == 2
    err = capsys.readouterr().err
    assert "not a readable index" in err and "--rebuild" in err and err.count("\n") == 1
    assert main(["index", str(corpus), "--index", str(tmp_path / "noise"), "--rebuild", "--quiet"]) == 0  # the way out
    assert Index(tmp_path / "noise").search("green tea", k=1)[0].path.endswith("tea.md")


def test_bm25_matches_word_forms_by_stem(corpus, tmp_path):
    index = Index(tmp_path / "ix", create=True)
    index.add(read_documents([corpus]))
    # "capitals", "cities" and "brews" occur nowhere; their stems do
    assert index.search("capitals cities", mode="bm25")[0].path.endswith("paris.txt")
    assert index.search("brews", mode="bm25")[0].path.endswith("tea.md")


def test_index_in_an_older_format_is_refused(tmp_path):
    import sqlite3

    (tmp_path / "old").mkdir()
    db = sqlite3.connect(tmp_path / "old" / "index.sqlite")  # the first format: no schema version, plain FTS
    db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
                     "CREATE TABLE docs (id INTEGER PRIMARY KEY, path TEXT UNIQUE, sha256 TEXT);"
                     "INSERT INTO docs (path, sha256) VALUES ('a.txt', 'x');")
    db.commit()
    db.close()
    with pytest.raises(LlmlabError, match="older format"):
        Index(tmp_path / "old")
    Index(tmp_path / "new", create=True)
    new = Index(tmp_path / "new").db
    assert new.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == SCHEMA_VERSION


CHINESE = {
    "card.txt": "我的银行卡昨天在地铁上丢了，请问怎样才能冻结这张卡并补办一张新卡？",
    "transfer.txt": "上周我给朋友转账五百元，对方一直没有收到这笔钱，转账记录显示处理中。",
    "rate.txt": "请问今天美元兑人民币的汇率是多少，在手机银行换汇需要手续费吗？",
}


def test_bm25_finds_words_inside_chinese_text(tmp_path):
    from llmlab.apps.search import bm25_text

    assert bm25_text("银行卡丢了, my card", query=True) == " 银行 行卡 卡丢 丢了 , my card"
    assert bm25_text("银行卡") == " 银行 行卡 银 行 卡 "  # stored: bigrams and single characters
    assert bm25_text("卡") == " 卡 " and bm25_text("plain text") == "plain text"
    folder = tmp_path / "zh"
    folder.mkdir()
    for name, text in CHINESE.items():
        (folder / name).write_text(text, encoding="utf-8")
    index = Index(tmp_path / "ix", create=True)
    index.add(read_documents([folder]))
    # words from the middle of a clause: FTS5 alone sees each clause as one token and finds nothing
    for query, expected in (("冻结", "card.txt"), ("转账没收到", "transfer.txt"), ("汇率手续费", "rate.txt")):
        hits = index.search(query, k=3, mode="bm25")
        assert hits and hits[0].path.endswith(expected), query
        assert index.search(query, k=1, mode="hybrid")[0].path.endswith(expected)
    # one character finds the texts that hold it anywhere, not only as a run of its own
    assert sorted(Path(h.path).name for h in index.search("请", k=3, mode="bm25")) == ["card.txt", "rate.txt"]
    assert [Path(h.path).name for h in index.search("卡", k=3, mode="bm25")] == ["card.txt"]
    # indexes of earlier formats (2: whole runs in the full-text table, 3: bigrams only) are rewritten on opening
    index.db.close()
    for version, stored in (("2", lambda t: t), ("3", lambda t: bm25_text(t, query=True))):
        db = sqlite3.connect(tmp_path / "ix" / "index.sqlite")
        with db:
            rows = db.execute("SELECT id, text FROM chunks").fetchall()
            db.execute("DELETE FROM chunks_fts")
            db.executemany("INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)", ((i, stored(t)) for i, t in rows))
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (version,))
        assert db.execute("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH '\"汇\"'").fetchall() == []
        db.close()
        again = Index(tmp_path / "ix")
        assert again.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == SCHEMA_VERSION
        assert again.search("冻结", k=1, mode="bm25")[0].path.endswith("card.txt")
        assert again.search("汇", k=1, mode="bm25")[0].path.endswith("rate.txt")
        again.db.close()


def test_chunks_overlap():
    from llmlab.tokenize import load_tokenizer

    tok = load_tokenizer("smollm2")
    text = " ".join(f"word{i}" for i in range(300))
    chunks = chunk_text(text, tok, chunk_tokens=50, overlap=10)
    assert len(chunks) > 5 and all(len(tok.encode(c)) <= 51 for c in chunks)
    assert chunks[0].split()[-1] in chunks[1]  # the end of one chunk starts the next
    words = set(text.split())  # "word123" is several tokens: no chunk starts or ends inside one
    assert all(set(c.split()) <= words for c in chunks)
    assert " ".join(chunk_text(text, tok, chunk_tokens=50, overlap=0)) == text  # no overlap: nothing lost, no gap


def test_errors(tmp_path, corpus):
    with pytest.raises(LlmlabError, match="no index here"):
        Index(tmp_path / "none")
    empty = Index(tmp_path / "empty", create=True)
    with pytest.raises(LlmlabError, match="the index is empty"):
        empty.search("anything")
    for k in (0, -3):  # a negative k once returned every chunk
        with pytest.raises(LlmlabError, match=f"k must be at least 1, not {k}"):
            empty.search("anything", k=k)
    for k in (2.5, None, "3", True):
        with pytest.raises(LlmlabError, match=r"k must be a whole number of hits \(an int\), at least 1, not "):
            empty.search("anything", k=k)
    for query in (None, 5, b"tea", ["tea"]):
        with pytest.raises(LlmlabError, match="the query must be a str, not "):
            empty.search(query)
    with pytest.raises(LlmlabError, match="the index is empty"):  # a NumPy integer is a whole number too
        empty.search("anything", k=np.int64(3))
    with pytest.raises(LlmlabError, match="chunks must be at least 1 token long, not 0"):
        chunk_text("some text", None, chunk_tokens=0)
    with pytest.raises(LlmlabError, match="no such file or folder"):
        read_documents([tmp_path / "missing"])
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9")
    with pytest.raises(LlmlabError, match="not valid UTF-8"):
        read_documents([tmp_path / "bad.txt"])


def test_folders_hold_html_and_pdf_and_unreadable_files_are_skipped(corpus, tmp_path):
    (corpus / "page.html").write_text("<html><script>var x;</script><body><h1>Ferns</h1><p>Ferns grow from spores."
                                      "</p></body></html>", encoding="utf-8")
    (corpus / "empty.txt").write_text("", encoding="utf-8")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (corpus / "moss.docx").write_bytes(docx("<w:p><w:r><w:t>Mosses have no roots.</w:t></w:r></w:p>"))
    skipped: list[str] = []
    documents = dict(read_documents([corpus], skipped))
    assert len(documents) == 5 and len(skipped) == 2
    assert next(text for path, text in documents.items() if path.endswith("moss.docx")) == "Mosses have no roots."
    page = next(text for path, text in documents.items() if path.endswith("page.html"))
    assert "Ferns grow from spores." in page and "var x" not in page
    assert any("empty.txt" in r for r in skipped) and any("broken.pdf" in r for r in skipped)
    with pytest.raises(LlmlabError, match="broken.pdf"):  # without a list for skipped files: an error
        read_documents([corpus])



def test_cli_index_reads_other_encodings_when_named(corpus, tmp_path, capsys):
    (corpus / "café.txt").write_bytes("Le café crème se boit au comptoir, à Paris.".encode("latin-1"))
    (corpus / "brûlée.md").write_text("La crème brûlée est un dessert à la vanille.", encoding="utf-8")
    index = str(tmp_path / "ix")
    assert main(["index", str(corpus), "--index", index, "--quiet", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["indexed"] == 4
    assert [Path(r.split(":")[0]).name for r in json.loads(captured.out)["unreadable"]] == ["café.txt"]
    assert "skipped" in captured.err and "café.txt: not valid UTF-8" in captured.err and "--encoding" in captured.err
    assert main(["index", str(corpus), "--index", index, "--quiet", "--format", "json", "--encoding", "latin-1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["indexed"], report["unchanged"], report["new_chunks"]) == (1, 4, 1)
    hits = Index(index).search("café crème", k=1, mode="bm25")
    assert hits[0].path.endswith("café.txt") and "Le café crème" in hits[0].text
    # From scratch, the named encoding reads the latin-1 file and leaves the UTF-8 one as it is.
    fresh = tmp_path / "fresh"
    assert main(["index", str(corpus), "--index", str(fresh), "--quiet", "--encoding", "latin-1"]) == 0
    texts = {Path(h.path).name: h.text for h in Index(fresh).search("crème", k=5, mode="bm25")}
    assert texts["café.txt"].startswith("Le café crème") and texts["brûlée.md"].startswith("La crème brûlée")
    # Named explicitly, a file that cannot be read is an error; a wrong encoding name stops before any file.
    assert main(["index", str(corpus / "café.txt"), "--index", index, "--quiet"]) == 2
    assert "or name its encoding: --encoding" in capsys.readouterr().err
    with pytest.raises(LlmlabError, match="unknown text encoding"):
        read_documents([corpus], [], encoding="latin-9000")

def test_cli_index_and_search_json(corpus, tmp_path, capsys):
    assert main(["index", str(corpus), "--index", str(tmp_path / "ix"), "--quiet", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["indexed"] == 3
    queries = tmp_path / "q.txt"
    queries.write_text("Eiffel Tower\nlist comprehensions\n", encoding="utf-8")
    assert main(["search", "--index", str(tmp_path / "ix"), "--queries", str(queries), "--format", "json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["query"] for line in lines] == ["Eiffel Tower", "list comprehensions"]
    assert lines[0]["mode"] == "hybrid" and "reciprocal rank fusion" in lines[0]["score"]
    assert lines[0]["results"][0]["path"].endswith("paris.txt")
    assert lines[1]["results"][0]["path"].endswith("python.txt")
    assert main(["search", "anything", "--index", str(tmp_path / "nowhere")]) == 2
    assert "no index here" in capsys.readouterr().err
    assert main(["search", "--index", str(tmp_path / "ix"), "--queries", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt: no such file" in capsys.readouterr().err
    assert main(["search", "tea", "--index", str(tmp_path / "ix"), "--queries", str(queries)]) == 2  # which one?
    assert "give a QUERY or --queries FILE, not both" in capsys.readouterr().err


def test_snippet_shows_the_sentence_that_matched_cut_between_words():
    from llmlab.apps.search import snippet

    text = ("We observe today not a victory of party. " * 3 + "And so, my fellow Americans: ask not what your "
            "country can do for you -- ask what you can do for your country.\n\nMy fellow citizens of the world.")
    shown = snippet(text, "What did Kennedy ask Americans to do for their country?", 80)
    assert shown.startswith("…And so, my fellow Americans: ask not") and shown.endswith("…") and len(shown) <= 82
    assert shown[:-1].split()[-1] in text.split()  # cut between words, not inside one
    assert snippet(text, "zebra", 40).startswith("We observe today") and "\n" not in snippet(text)
    assert snippet("short text", "text") == "short text"


def test_file_names_are_searched_with_their_chunks(tmp_path):
    """A speech rarely says its speaker's name; its file name does. Indexes of format 4 (no names) are
    rebuilt on opening, their vectors kept."""
    from llmlab.apps.search import bm25_text, title

    assert title("/speeches/1961-Kennedy.txt") == "1961 Kennedy" and title("4983") == "" and title("a_b.md") == "a b"
    folder = tmp_path / "speeches"
    folder.mkdir()
    (folder / "1961-Kennedy.txt").write_text("Ask not what your country can do for you.", encoding="utf-8")
    (folder / "1933-Roosevelt.txt").write_text("The only thing we have to fear is fear itself.", encoding="utf-8")
    index = Index(tmp_path / "ix", create=True)
    index.add(read_documents([folder]))
    assert [Path(h.path).name for h in index.search("Kennedy", k=5, mode="bm25")] == ["1961-Kennedy.txt"]
    vectors = index.db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
    with index.db:  # the table as format 4 had it: chunk texts only
        index.db.execute("DROP TABLE chunks_fts")
        index.db.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(text, tokenize='porter unicode61')")
        index.db.executemany("INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)",
                             [(i, bm25_text(t)) for i, t in index.db.execute("SELECT id, text FROM chunks")])
        index.db.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
    assert index.search("Roosevelt", k=5, mode="bm25") == []
    index.db.close()
    again = Index(tmp_path / "ix")
    assert again.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == SCHEMA_VERSION
    assert [Path(h.path).name for h in again.search("Roosevelt", k=5, mode="bm25")] == ["1933-Roosevelt.txt"]
    assert again.db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall() == vectors


def orphans(index: Index) -> int:
    """Chunks whose file is no longer in the index (search fails on them)."""
    return index.db.execute("SELECT COUNT(*) FROM chunks WHERE doc NOT IN (SELECT id FROM docs)").fetchone()[0]


def test_a_file_reached_twice_is_indexed_once(corpus, tmp_path, capsys):
    """A folder and a file in it (or the folder twice by two spellings) in one run: each file once; it
    replaced its own entry and left its first chunks behind, and every search said "damaged"."""
    index = tmp_path / "ix"
    assert main(["index", str(corpus), str(corpus / "tea.md"), str(corpus / ".." / corpus.name), "--index", str(index),
                 "--quiet", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["indexed"] == 3
    ix = Index(index)
    assert orphans(ix) == 0 and ix.search("green tea", k=1)[0].path.endswith("tea.md")
    ix.add([("a.txt", "one text"), ("a.txt", "one text")])  # the same pair twice: once
    assert ix.db.execute("SELECT COUNT(*) FROM docs WHERE path = 'a.txt'").fetchone()[0] == 1
    with pytest.raises(LlmlabError, match="'b.txt' is given twice, with different texts"):
        ix.add([("b.txt", "one text"), ("b.txt", "another")])


def test_another_writer_between_reading_and_writing_a_file(corpus, tmp_path, monkeypatch):
    """Two runs indexing one file at once: the later write replaces the earlier one whole (its chunks
    were left behind, pointing at no file, and every search failed)."""
    import llmlab.apps.search as search

    index, other = Index(tmp_path / "ix", create=True), Index(tmp_path / "ix")
    real = search.chunk_text

    def racing(text, *args, **kwargs):  # the other run commits the same file after this one found it new
        if text == "The first version of the notes.":
            other.add([("notes.txt", "The other run's version of the notes.")])
        return real(text, *args, **kwargs)

    monkeypatch.setattr(search, "chunk_text", racing)
    index.add([("notes.txt", "The first version of the notes.")])
    assert orphans(index) == 0 and index.db.execute("SELECT COUNT(*) FROM docs").fetchone()[0] == 1
    assert [h.text for h in index.search("notes", k=5)] == ["The first version of the notes."]


def test_rebuild_keeps_the_old_index_until_the_new_one_is_whole(corpus, tmp_path, monkeypatch, capsys):
    import llmlab.apps.search as search

    index = tmp_path / "ix"
    assert main(["index", str(corpus), "--index", str(index), "--quiet"]) == 0
    real, calls = search.chunk_text, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "chunk_text", interrupted)
    assert main(["index", str(corpus), "--index", str(index), "--quiet", "--rebuild", "--chunk-tokens", "50"]) == 130
    ix = Index(index)  # the old index, whole: its three files and its chunking
    assert ix.chunking() == (200, 40) and ix.db.execute("SELECT COUNT(*) FROM docs").fetchone()[0] == 3
    assert ix.search("green tea", k=1)[0].path.endswith("tea.md")
    ix.close()
    monkeypatch.setattr(search, "chunk_text", real)
    # a damaged index (or one of an older format) is rebuilt without being opened
    db = sqlite3.connect(index / "index.sqlite")
    db.execute("DROP TABLE chunks")
    db.commit()
    db.close()
    assert main(["search", "tea", "--index", str(index)]) == 2
    assert "--rebuild" in capsys.readouterr().err
    assert main(["index", str(corpus), "--index", str(index), "--quiet", "--rebuild", "--chunk-tokens", "50"]) == 0
    assert sorted(p.name for p in index.iterdir()) == ["index.sqlite"]  # the interrupted rebuild's file is gone
    assert Index(index).chunking() == (50, 40) and Index(index).search("green tea", k=1)[0].path.endswith("tea.md")


def test_an_index_with_nothing_to_change_is_not_written(corpus, tmp_path):
    """So that an index on read-only media, or being read by others, can be re-run safely."""
    index = tmp_path / "ix"
    Index(index, create=True).add(read_documents([corpus]))
    before = (index / "index.sqlite").read_bytes()
    db = sqlite3.connect(index / "index.sqlite")
    version = db.execute("PRAGMA data_version").fetchone()[0]
    report = Index(index).add(read_documents([corpus]), folders=[corpus])
    assert (report.indexed, report.unchanged, report.removed) == (0, 3, 0)
    assert db.execute("PRAGMA data_version").fetchone()[0] == version  # no other connection committed
    assert (index / "index.sqlite").read_bytes() == before


def test_a_busy_index_is_busy_not_damaged(corpus, tmp_path, monkeypatch):
    """Another process holding a write lock: searching and indexing wait, then say it is busy (search
    said "the index is damaged ... delete the folder", indexing was a traceback)."""
    import llmlab.apps.search as search

    Index(tmp_path / "ix", create=True).add(read_documents([corpus]))
    monkeypatch.setattr(search, "BUSY_SECONDS", 0.2)
    index = Index(tmp_path / "ix")
    writer = sqlite3.connect(tmp_path / "ix" / "index.sqlite", isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        for action in (lambda: index.search("tea", k=1, mode="bm25"),
                       lambda: index.add([("new.txt", "A new file about coffee.")]),
                       lambda: Index(tmp_path / "ix")):  # opening it, too
            with pytest.raises(LlmlabError, match="it is busy: another llmlab is writing to it") as e:
                action()
            assert "damaged" not in str(e.value) and "--rebuild" not in str(e.value)
    finally:
        writer.execute("ROLLBACK")
    assert index.search("tea", k=1, mode="bm25")[0].path.endswith("tea.md")


def test_hidden_files_and_names_that_are_not_utf8(corpus, tmp_path, capsys):
    """Inside a folder, .git and other hidden files are left out (named, they are read); a file name
    that is not UTF-8 is skipped with its reason (it stopped the whole run with a traceback)."""
    import os

    (corpus / ".git").mkdir()
    (corpus / ".git" / "notes.txt").write_text("Hidden notes about green tea.", encoding="utf-8")
    (corpus / ".draft.md").write_text("A hidden draft about green tea.", encoding="utf-8")
    fd = os.open(os.fsencode(corpus) + b"/caf\xe9.txt", os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"A file whose name is Latin-1.")
    os.close(fd)
    index = str(tmp_path / "ix")
    assert main(["index", str(corpus), "--index", index, "--quiet", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["indexed"] == 3 and "the file's name is not UTF-8 text (rename the file)" in \
        captured.err and "--encoding" not in captured.err  # (the hint for contents in another encoding)
    assert main(["index", str(corpus / ".draft.md"), "--index", index, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["index", str(corpus), "--index", index, "--quiet", "--format", "json"]) == 0  # its folder again
    assert json.loads(capsys.readouterr().out)["removed"] == 0  # a hidden file named once stays
    paths = {Path(h.path).name for h in Index(index).search("green tea", k=10)}
    assert ".draft.md" in paths and "notes.txt" not in paths
    with pytest.raises(LlmlabError, match="is not valid UTF-8"):
        Index(index).add([(os.fsdecode(b"caf\xe9.txt"), "text")])


def test_an_empty_index_file_left_by_a_failed_first_run(corpus, tmp_path):
    (tmp_path / "ix").mkdir()
    (tmp_path / "ix" / "index.sqlite").write_bytes(b"")
    assert main(["index", str(corpus), "--index", str(tmp_path / "ix"), "--quiet"]) == 0
    assert Index(tmp_path / "ix").search("green tea", k=1)[0].path.endswith("tea.md")


def test_a_folder_of_unreadable_files_is_an_error(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    for name in ("a.txt", "b.md"):
        (tmp_path / "docs" / name).write_text(" \n", encoding="utf-8")
    assert main(["index", str(tmp_path / "docs"), "--index", str(tmp_path / "ix"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "none of the 2 file(s) found could be read" in err and err.count("skipped") == 2
    assert not (tmp_path / "ix").exists()  # exit 0 and an empty index before


def test_a_moved_folder_is_said_and_pruned(corpus, tmp_path, capsys):
    """After the folder moved, its files were in the index twice (old and new paths), silently."""
    index = str(tmp_path / "ix")
    assert main(["index", str(corpus), "--index", index, "--quiet"]) == 0
    Index(index).add([("note-7", "An id from Python, not a file: never gone.")])
    moved = corpus.rename(tmp_path / "moved")
    capsys.readouterr()
    assert main(["index", str(moved), "--index", index, "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "3 indexed file(s) are no longer on disk (moved or deleted)" in err and "--prune" in err
    hits = Index(index).search("green tea", k=10)  # each passage twice: once as a hit, once in its `also`
    assert {Path(p).parent.name for h in hits for p in [h.path, *(a["path"] for a in h.also)]} == {"docs", "moved", ""}
    assert main(["index", str(moved), "--index", index, "--quiet", "--prune", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["removed"] == 3 and "no longer on disk" not in err
    paths = {h.path for h in Index(index).search("green tea", k=10)}
    assert {Path(p).parent.name for p in paths if p != "note-7"} == {"moved"} and Index(index).gone() == []


def test_many_queries_are_embedded_together(corpus, tmp_path, monkeypatch, capsys):
    """`search --queries`: one encoder call for all of them (one per query before), same rankings."""
    index = Index(tmp_path / "ix", create=True)
    index.add(read_documents([corpus]))
    queries = ["French capital city", "how to brew green tea", "list comprehensions in Python"]
    alone = [index.search(q, k=3, mode="dense") for q in queries]
    encoder, calls = index.encoder(), []
    encode = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda texts, **kw: calls.append(len(texts)) or encode(texts, **kw))
    index.prepare(queries)
    together = [index.search(q, k=3, mode="dense") for q in queries]
    assert calls == [3] and [[h.path for h in r] for r in together] == [[h.path for h in r] for r in alone]
    assert np.allclose([h.score for r in together for h in r], [h.score for r in alone for h in r], atol=1e-3)
    index.search("a query not prepared", k=1)
    assert calls == [3, 1]
    (tmp_path / "q.txt").write_text("\n".join(queries), encoding="utf-8")
    import llmlab.apps.search as search

    monkeypatch.setattr(search.Index, "encoder", lambda self: encoder)
    calls.clear()
    assert main(["search", "--queries", str(tmp_path / "q.txt"), "--index", str(tmp_path / "ix"), "--format",
                 "json"]) == 0
    assert calls == [3] and len(capsys.readouterr().out.splitlines()) == 3



def test_the_index_file_given_for_its_folder(corpus, tmp_path, capsys):
    index = tmp_path / "ix"
    assert main(["index", str(corpus), "--index", str(index), "--quiet"]) == 0
    assert main(["search", "tea", "--index", str(index / "index.sqlite")]) == 2
    assert f"a file, not an index folder: give its folder, {index}" in capsys.readouterr().err  # "no index here"
    assert main(["index", str(corpus), "--index", str(corpus / "tea.md"), "--quiet"]) == 2
    assert "tea.md: a file, not an index folder\n" in capsys.readouterr().err  # was "File exists"


def test_a_closed_index_says_so(corpus, tmp_path):
    index = Index(tmp_path / "ix", create=True)
    index.add(read_documents([corpus]))
    index.close()
    for action in (lambda: index.search("tea", k=1, mode="bm25"), lambda: index.add([("a.txt", "text")])):
        with pytest.raises(LlmlabError, match="this Index was closed"):  # was "damaged ... --rebuild"
            action()


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_a_passage_in_several_files_is_one_hit(corpus, tmp_path, capsys, mode):
    for copy in ("paris (copy).txt", "backup/paris.txt"):  # the same text under other names
        (corpus / copy).parent.mkdir(exist_ok=True)
        (corpus / copy).write_text(FILES["paris.txt"], encoding="utf-8")
    index = Index(tmp_path / "ix", create=True)
    index.add(read_documents([corpus]))
    hits = index.search("Eiffel Tower in the capital of France", k=3, mode=mode)
    texts = [h.text for h in hits]
    assert len(set(texts)) == len(hits) == (2 if mode == "bm25" else 3)  # different passages (BM25: those with a word)
    paris = hits[texts.index(FILES["paris.txt"])]
    places = [paris.path] + [p["path"] for p in paris.also]
    assert sorted(Path(p).name for p in places) == ["paris (copy).txt", "paris.txt", "paris.txt"]
    assert len(set(places)) == 3 and all(p["chunk"] == 0 for p in paris.also)
    assert sum(bool(h.also) for h in hits) == 1 and paris.to_dict()["also"] == paris.also
    best = index.search("the Eiffel Tower on the Champ de Mars", k=1, mode=mode)[0]  # every copy, whatever k
    assert best.text == FILES["paris.txt"] and sorted([best.path, *(p["path"] for p in best.also)]) == sorted(places)
    # fewer different passages than k: all of them, once each
    every = index.search("Eiffel Tower capital green tea python", k=10, mode=mode)
    assert sorted(h.text for h in every) == sorted(FILES.values())
    main(["search", "Eiffel Tower", "--index", str(tmp_path / "ix"), "-k", "2", "--mode", mode])
    out = capsys.readouterr().out
    assert out.count("the same passage is also in") == 1 and "paris (copy).txt (chunk 0)" in out


def test_an_open_index_reads_the_file_a_rebuild_put_in_its_place(corpus, tmp_path):
    """It went on reading the replaced file (unlinked, still open) until reopened."""
    from llmlab.apps.search import rebuilding

    open_before = Index(tmp_path / "ix", create=True)
    open_before.add(read_documents([corpus]))
    assert open_before.search("Eiffel Tower", k=1, mode="bm25")[0].path.endswith("paris.txt")
    with rebuilding(tmp_path / "ix") as fresh:  # as `llmlab index --rebuild` does, here from another object
        fresh.add([("violins.txt", "A violin's body is carved from spruce and maple.")])
    assert [h.path for h in open_before.search("spruce and maple", k=3)] == ["violins.txt"]
    assert open_before.chunk_count() == 1
    open_before.add([("more.txt", "Maple syrup comes from the sap of maple trees.")])  # writes the new file
    assert Index(tmp_path / "ix").chunk_count() == 2
    gone = str(tmp_path / "deleted" / "notes.txt")
    with rebuilding(tmp_path / "ix") as fresh:
        fresh.add([(gone, "Notes from a folder deleted since.")])
    assert open_before.gone() == [gone] and open_before.prune() == 1 and Index(tmp_path / "ix").chunk_count() == 0
    open_before.close()
    with rebuilding(tmp_path / "ix") as fresh:
        fresh.add([("x.txt", "x")])
    with pytest.raises(LlmlabError, match="closed"):  # a closed Index stays closed
        open_before.search("maple")


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_many_copies_of_one_passage_leave_room_for_the_others(tmp_path, mode):
    """150 copies of a notice would fill any top list (hybrid fuses the top 100 of each ranking)."""
    notice = "Confidential: this document about the Eiffel Tower is for internal use only."
    documents = [(f"copy-{i:03d}.txt", notice) for i in range(150)] + list(FILES.items())
    index = Index(tmp_path / "ix", create=True)
    index.add(documents)
    hits = index.search("Eiffel Tower notice", k=4, mode=mode)
    assert sorted(h.text for h in hits) == sorted([notice, *FILES.values()])
    first = next(h for h in hits if h.text == notice)
    assert len(first.also) == 149 and {first.path, *(p["path"] for p in first.also)} == {d for d, _ in documents[:150]}


def test_index_files_and_search_index_are_the_commands_as_functions(corpus, tmp_path):
    """`from llmlab.apps import index_files, search_index`: what `llmlab index` / `llmlab search` do."""
    from llmlab.apps import index_files, search_index

    (corpus / "blank.txt").write_text(" \n", encoding="utf-8")  # found in the folder, unreadable: left out
    seen = []
    ix = tmp_path / "ix"
    r = index_files(corpus, ix, chunk_tokens=30, overlap=5, unreadable=seen.append)
    assert (r.files, r.indexed, r.unchanged, r.removed) == (3, 3, 0, 0) and r.total_chunks == r.new_chunks >= 3
    assert seen == [r.unreadable] and len(r.unreadable) == 1 and "blank.txt" in r.unreadable[0]
    assert Index(ix).chunking() == (30, 5)
    hits = search_index("how to brew green tea", ix, k=2)
    assert [h.path for h in hits] == [h.path for h in Index(ix).search("how to brew green tea", k=2)]
    assert hits[0].path.endswith("tea.md") and len(hits) == 2
    assert [h.path for h in search_index("Eiffel", ix, k=1, mode="bm25")] == [str((corpus / "paris.txt").resolve())]

    (corpus / "python.txt").unlink()
    other = tmp_path / "note.txt"
    other.write_text("A note kept outside the folder about sourdough bread.", encoding="utf-8")
    r = index_files([corpus, other], ix)
    assert (r.indexed, r.unchanged, r.removed) == (1, 2, 1) and r.gone == []  # the folder's vanished file left
    other.unlink()
    r = index_files(corpus, ix)
    assert r.gone == [str(other.resolve())] and r.removed == 0  # named alone once: kept, listed
    r = index_files(corpus, ix, prune=True)
    assert r.removed == 1 and r.gone == [] and r.total_chunks == Index(ix).chunk_count()
    with pytest.raises(LlmlabError, match="cuts files into 30-token chunks overlapping by 5, not 50"):
        index_files(corpus, ix, chunk_tokens=50)
    r = index_files(corpus, ix, chunk_tokens=50, rebuild=True)
    assert r.indexed == 2 and Index(ix).chunking() == (50, 40)
    for bad in (corpus / "blank.txt",):  # named explicitly, an unreadable file is an error
        with pytest.raises(LlmlabError, match="blank.txt"):
            index_files(bad, tmp_path / "ix2")
    assert not (tmp_path / "ix2").exists()
