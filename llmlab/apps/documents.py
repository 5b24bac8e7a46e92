"""Plain text out of the documents people have: text, Markdown, HTML and PDF files.

- ``.txt`` / ``.md``: read as they are, in UTF-8 unless a byte-order mark or the caller says
  otherwise (see `llmlab.fileio.decode_text`); a leading byte-order mark is dropped.
- ``.html`` / ``.htm``: the standard library's ``html.parser``; ``script``, ``style`` and
  similar non-text elements are dropped, and so are a saved page's menus, banners and footers
  when it marks its content (see `html_text`); block elements (paragraphs, headings, list items,
  table rows) are separated by a blank line, ``<br>`` is a line break, other whitespace runs
  become one space (``<pre>`` keeps its line breaks; lines lose their indentation). Without a
  byte-order mark or an encoding from the caller, a ``<meta charset>`` in the first 2 kB names
  the encoding, as browsers read it ("iso-8859-1" and "ascii" mean windows-1252).
- ``.pdf``: pypdf's text extraction, page by page. An encrypted file is opened with the
  empty password when it has one (many are "encrypted" only to restrict printing).
- ``.docx`` (Word): the paragraphs of the main text (``word/document.xml`` in the zip archive,
  read with the standard library), table cells included, one per block; tabs and line breaks
  kept; text boxes after their paragraph (once: Word also stores a copy for old readers);
  deleted tracked changes, headers, footers, comments and footnotes left out.

Every way a document can be unusable (missing, unsupported suffix, not UTF-8, empty, a
corrupt or password-protected PDF or Word file, a scanned PDF with no text layer) is one ``LlmlabError``
line that names the file and says what to do.
Tests: tests/apps/test_documents.py.
"""

import io
import logging
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

from llmlab.errors import LlmlabError
from llmlab.fileio import check_encoding, decode_text, read_bytes

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
_SKIP = {"script", "style", "noscript", "template", "svg", "canvas", "iframe", "object"}
_BLOCKS = {"address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt",
           "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
           "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "title", "tr", "ul"}


_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)


def html_charset(data: bytes) -> str | None:
    """The encoding a page's ``<meta charset=...>`` declares in its first 2 kB, if Python knows it."""
    m = _META_CHARSET.search(data[:2048])
    if not m:
        return None
    try:
        name = check_encoding(m.group(1).decode("ascii"))
    except LlmlabError:
        return None
    if name.startswith(("utf-16", "utf-32")):  # a meta tag readable as ASCII: the page is not UTF-16
        return "utf-8"
    return "cp1252" if name in ("iso8859-1", "ascii") else name  # the WHATWG mapping browsers follow


def read_document(path: str | Path, encoding: str | None = None) -> str:
    """The text of a .txt, .md, .html or .pdf file; ``encoding`` for the text formats (default:
    UTF-8, or what a byte-order mark or an HTML page's meta charset says)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        raise LlmlabError(f"{p}: is a folder; give one document (`llmlab index` reads folders)")
    if suffix not in SUFFIXES:
        raise LlmlabError(f"{p}: unsupported document type {suffix or '(no suffix)'!r} "
                          f"(supported: {', '.join(SUFFIXES)})")
    if suffix == ".pdf":
        text = pdf_text(p)
    elif suffix == ".docx":
        text = docx_text(p)
    else:
        data = read_bytes(p)
        if suffix in (".html", ".htm"):  # a byte-order mark still wins over the meta tag (decode_text)
            text = html_text(decode_text(data, str(p), encoding or html_charset(data)))
        else:
            text = decode_text(data, str(p), encoding)
    if not text.strip():
        raise LlmlabError(f"{p}: the document has no text")
    return text


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
         "wbr"}  # elements with no end tag
_AROUND = {"navigation", "banner", "contentinfo", "search", "complementary", "dialog", "alertdialog"}  # ARIA roles
_MAIN, _ARTICLE, _PAGE, _DROP = 1, 2, 4, 8  # what an open element makes of the text inside it
# Elements a start tag closes when they are open (HTML's omitted end tags: "<li>a<li>b", "<p>a<div>"):
# a block closes an open <p>; these close an open sibling of theirs. Only through inline elements.
_SIBLINGS = {"p": {"p"}, "li": {"li"}, "dt": {"dt", "dd"}, "dd": {"dt", "dd"}, "tr": {"tr", "td", "th"},
             "td": {"td", "th"}, "th": {"td", "th"}, "option": {"option"}}
_STRUCTURE = _BLOCKS | {"td", "th", "thead", "tbody", "tfoot", "select", "option", "optgroup", "body", "html"}
_UNSEEN = re.compile(r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden)\s*(?:!\s*important\s*)?(?:;|$)",
                     re.IGNORECASE)  # an inline style that hides the element


class _TextParser(HTMLParser):
    """Collects text parts, each with what encloses it (main content, an article, the page's own
    header or footer, something never shown); block boundaries as "\n\n" marks, <br> as "\n"."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[tuple[str, int]] = []
        self.open: list[tuple[str, int]] = []  # open elements and their marks
        self.marks = 0  # the marks of the open elements, or-ed
        self.pre = 0  # depth inside <pre>: whitespace kept
        self.title: list[str] = []

    def _mark(self, tag: str, attrs: dict) -> int:
        if (tag in _SKIP or tag == "nav" or "hidden" in attrs or attrs.get("aria-hidden") == "true"
                or attrs.get("role") in _AROUND
                or tag not in ("html", "body") and _UNSEEN.search(attrs.get("style") or "")):  # (a page a
            # script reveals hides its body until then: its text is still the page's)
            return _DROP
        if tag == "main" or attrs.get("role") == "main":
            return _MAIN
        if tag == "article":
            return _ARTICLE
        if tag in ("header", "footer", "aside") and not self.marks & (_MAIN | _ARTICLE):
            return _PAGE  # the site's banner, menus and small print around the content
        return 0

    def _add(self, text: str) -> None:
        if not self.marks & _DROP:  # (a hidden list item's "- " too)
            self.parts.append((text, self.marks))

    def _close_implied(self, tag: str) -> None:
        closes = ({"p"} if tag in _BLOCKS else set()) | _SIBLINGS.get(tag, set())
        while closes:
            i = len(self.open) - 1
            while i >= 0 and self.open[i][0] not in _STRUCTURE:  # inline elements (b, span, a...) in between
                i -= 1
            if i < 0 or self.open[i][0] not in closes:
                return
            self.handle_endtag(self.open[i][0])

    def handle_starttag(self, tag, attrs):
        self._close_implied(tag)
        if tag not in _VOID:
            mark = self._mark(tag, dict(attrs))
            self.open.append((tag, mark))
            self.marks |= mark
        if tag == "br":
            self._add("\n")
        elif tag in _BLOCKS:
            self._add("\n\n")
            self.pre += tag == "pre"
            if tag == "li":
                self._add("- ")
        elif tag in ("td", "th"):
            self._add(" ")

    def handle_startendtag(self, tag, attrs):
        if tag == "br":
            self._add("\n")
        elif tag == "hr":
            self._add("\n\n")

    def handle_endtag(self, tag):
        if any(t == tag for t, _ in self.open):  # close it and whatever was left open inside it
            while self.open.pop()[0] != tag:
                pass
            self.marks = 0
            for _, mark in self.open:
                self.marks |= mark
        if tag in _BLOCKS:
            self._add("\n\n")
            self.pre = max(self.pre - (tag == "pre"), 0)

    def handle_data(self, data):
        if not self.marks & _DROP:
            self._add(data if self.pre else re.sub(r"\s+", " ", data))
            if self.open and self.open[-1][0] == "title":
                self.title.append(data)

    def handle_comment(self, data):
        pass


def html_text(html: str) -> str:
    """Visible text of an HTML page, one block per paragraph (blank line between blocks).

    A saved web page is mostly not its content: menus, banners, cookie notices, footers. Menus
    (``nav``), hidden elements (``hidden``, ``aria-hidden``, an inline ``display: none`` or
    ``visibility: hidden``) and ARIA landmarks around the content (navigation, banner,
    contentinfo, search, complementary, dialog) are always left out. When the page marks its
    content (``<main>``, ``role="main"``, else ``<article>``), the text is the page's title and
    that content; otherwise everything else, except a page-level ``header``/``footer``/``aside``
    when other text remains."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()

    def text_of(inside: int = 0, outside: int = 0) -> str:  # the parts inside any of ``inside``, outside ``outside``
        text = "".join(part for part, marks in parser.parts
                       if (not inside or marks & inside) and not marks & outside)
        text = "\n".join(line.strip() for line in text.split("\n"))
        return re.sub(r"\n{3,}", "\n\n", text).strip()

    for region in (_MAIN, _ARTICLE):
        if content := text_of(inside=region):
            title = re.sub(r"\s+", " ", "".join(parser.title)).strip()
            return f"{title}\n\n{content}" if title and not content.startswith(title) else content
    return text_of(outside=_PAGE) or text_of()


def pdf_text(path: Path) -> str:
    """Text of every page of a PDF, pages separated by a blank line."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    if not path.is_file():
        raise LlmlabError(f"{path}: no such file" if not path.exists() else f"{path}: is not a file")
    data = path.read_bytes()
    if not data:
        raise LlmlabError(f"{path}: file is empty")
    if not data.lstrip()[:5] == b"%PDF-":
        raise LlmlabError(f"{path}: not a PDF file (it does not start with %PDF-)")
    log = logging.getLogger("pypdf")
    level = log.level
    log.setLevel(logging.ERROR)  # pypdf's warnings about damage it repairs would be noise; what fails is reported
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LlmlabError(f"{path}: the PDF is password-protected; save an unprotected copy first")
        pages = [page.extract_text() or "" for page in reader.pages]
    except LlmlabError:
        raise
    except (FileNotDecryptedError, DependencyError):
        raise LlmlabError(f"{path}: the PDF is encrypted and cannot be opened without its password "
                          "(or its cipher is not supported); save an unprotected copy first") from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as e:
        raise LlmlabError(f"{path}: cannot read the PDF, the file looks damaged ({type(e).__name__}: {e})") from None
    finally:
        log.setLevel(level)
    if not pages:
        raise LlmlabError(f"{path}: the PDF has no pages (a damaged file?)")
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise LlmlabError(f"{path}: the PDF has {len(pages)} page(s) but no extractable text "
                          "(a scanned document? run OCR on it first)")
    return text


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"  # a second copy for old readers
_DOCX_LIMIT = 256 * 2**20  # bytes of XML, unpacked: a real document is far smaller, a zip bomb is not


def docx_text(path: Path) -> str:
    """The paragraphs of a Word (.docx) document, separated by a blank line."""
    data = read_bytes(path)
    if data.startswith(b"\xd0\xcf\x11\xe0"):  # an OLE container: the legacy .doc format, or an encrypted .docx
        raise LlmlabError(f"{path}: a password-protected or legacy Word file; save it as an unprotected .docx first")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            try:
                info = archive.getinfo("word/document.xml")
            except KeyError:
                raise LlmlabError(f"{path}: not a Word document (no word/document.xml inside)") from None
            if info.file_size > _DOCX_LIMIT:
                raise LlmlabError(f"{path}: the document's text part unpacks to {info.file_size:,} bytes, "
                                  f"more than {_DOCX_LIMIT:,}")
            root = ElementTree.fromstring(archive.read(info))
    except zipfile.BadZipFile:
        raise LlmlabError(f"{path}: not a valid .docx file (not a zip archive)") from None
    except ElementTree.ParseError as e:
        raise LlmlabError(f"{path}: the document's XML is damaged ({e})") from None
    paragraphs: list[str] = []
    _docx_blocks(root, paragraphs)
    text = "\n\n".join(p for p in paragraphs if p)
    if not text:
        raise LlmlabError(f"{path}: the document has no text")
    return text


def _docx_blocks(element, paragraphs: list[str]) -> None:
    """Append the text of every paragraph under ``element``, in order; a paragraph inside
    another (a text box) comes after the one that holds it."""
    for child in element:
        if child.tag == f"{_W}p":
            parts: list[str] = []
            nested: list[str] = []
            _docx_runs(child, parts, nested)
            paragraphs.append("".join(parts).strip())
            paragraphs.extend(nested)
        else:
            _docx_blocks(child, paragraphs)


def _docx_runs(element, parts: list[str], nested: list[str]) -> None:
    for child in element:
        tag = child.tag
        if tag == f"{_W}t":
            parts.append(child.text or "")
        elif tag == f"{_W}tab":
            parts.append("\t")
        elif tag in (f"{_W}br", f"{_W}cr"):
            parts.append("\n")
        elif tag == f"{_W}p":
            _docx_blocks([child], nested)
        elif tag not in (f"{_W}del", _FALLBACK) and not tag.endswith("Pr"):  # not deleted tracked changes, not
            _docx_runs(child, parts, nested)  # the old readers' copy of a text box, not properties (tab stops)
