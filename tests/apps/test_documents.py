"""Reading documents the tests write: Markdown, HTML, a hand-made PDF, and every way they fail."""

import io
import re
import zipfile

import pytest

from llmlab.apps.documents import html_text, read_document
from llmlab.errors import LlmlabError


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF whose content stream shows ``lines`` in Helvetica, with a correct xref table."""
    text = " ".join(f"({line}) Tj 0 -16 Td" for line in lines)
    stream = f"BT /F1 12 Tf 72 720 Td {text} ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_text_and_markdown(tmp_path):
    (tmp_path / "a.md").write_bytes("\ufeff# Title\n\nSome *text*.\n".encode())
    assert read_document(tmp_path / "a.md") == "# Title\n\nSome *text*.\n"
    (tmp_path / "b.txt").write_text("plain café\n", encoding="utf-8")
    assert read_document(tmp_path / "b.txt") == "plain café\n"


def test_html_drops_scripts_and_keeps_blocks(tmp_path):
    page = """<!doctype html><html><head><title>Tea guide</title><style>p { color: red }</style>
    <script>var x = "<p>not text</p>";</script></head><body>
    <h1>Green   tea</h1><p>Brew it at 80&nbsp;&deg;C &amp; steep
    briefly.</p><ul><li>one</li><li>two</li></ul>line<br>break<div>end</div></body></html>"""
    (tmp_path / "p.html").write_text(page, encoding="utf-8")
    text = read_document(tmp_path / "p.html")
    assert text == "Tea guide\n\nGreen tea\n\nBrew it at 80 °C & steep briefly.\n\n- one\n\n- two\n\nline\nbreak\n\nend"
    assert "color" not in text and "not text" not in text
    assert html_text("<pre>a\n  b</pre>") == "a\nb"



SAVED_PAGE = """<!doctype html><html><head><title>Data protection policy | Acme Ltd</title></head><body>
<div id="cookies" role="dialog"><p>We use cookies. <button>Accept all</button></p></div>
<header><a href="/">Acme</a><nav><ul><li><a>Home</a></li><li><a>Products</a></li></ul></nav></header>
<div class="page"><main><article><header><h1>Data protection policy</h1><p>Updated 1 May 2024</p></header>
<p>We keep your data for <b>two years</b>.<p>Our officer is Jane Roe.
<div hidden>Draft: do not publish</div><aside>Related: the terms of service</aside></article></main>
<div role="complementary">Popular: prices</div></div>
<footer><p>&copy; 2024 Acme Ltd &middot; <a>Privacy</a></p></footer></body></html>"""


def test_saved_web_page_keeps_its_content_not_the_menus(tmp_path):
    """A page as a browser saves it: the title and the main content, without cookie notice, menus,
    site header and footer, sidebars or hidden drafts (they would be summarised and indexed)."""
    content = ("Data protection policy\n\nUpdated 1 May 2024\n\nWe keep your data for two years.\n\n"
               "Our officer is Jane Roe.\n\nRelated: the terms of service")
    assert html_text(SAVED_PAGE) == f"Data protection policy | Acme Ltd\n\n{content}"
    assert html_text(SAVED_PAGE.replace("<main>", "").replace("</main>", "")) == html_text(SAVED_PAGE)  # <article>
    bare = SAVED_PAGE.replace("main>", "div>").replace("article>", "div>")  # no marked content: all but the chrome
    assert html_text(bare) == ("Data protection policy | Acme Ltd\n\nWe keep your data for two years.\n\n"
                               "Our officer is Jane Roe.")
    assert html_text("<header><h1>Only a header</h1></header>") == "Only a header"  # never nothing when there is text
    assert html_text('<main role="main"><p>a<p>b</main><p>c') == "a\n\nb"  # unclosed <p> closed by </main>
    # Inline styles that hide an element (a collapsed answer, a draft); display: block / visible stay.
    hidden = ('<p>shown</p><div style="color: red; DISPLAY:none !important">gone <b>too</b></div>'
              '<p style="visibility : hidden">gone</p><p style="display: block">kept</p>'
              '<p style="visibility: visible">kept too</p><p style="--display:none-ish">and this</p>')
    assert html_text(hidden) == "shown\n\nkept\n\nkept too\n\nand this"
    # End tags HTML lets a page leave out: a hidden <p> or <li> ends where the next one (or a block) starts,
    # as a browser reads it, not at its parent's end
    assert html_text('<div><p style="display:none">secret<p>First.<p>Second.</div><p>after') == \
        "First.\n\nSecond.\n\nafter"
    assert html_text('<ul><li style="display: none">x<li>shown item</ul>tail') == "- shown item\n\ntail"
    assert html_text("<p hidden>draft<div>block after</div>") == "block after"
    assert html_text("<ul><li>first<li hidden>not this<li>next</ul>") == "- first\n\n- next"
    assert html_text('<table><tr><td style="display:none">h<td>cell<tr><td>row 2</table>') == "cell\n\nrow 2"
    assert html_text("<p>a <b>bold<p>next</b> one") == "a bold\n\nnext one"
    assert html_text('<body style="display:none"><p>shown by a script</p></body>') == "shown by a script"

def test_encodings_other_than_utf8(tmp_path):
    (tmp_path / "win.txt").write_bytes("naïve café – “quoted”\n".encode("cp1252"))
    assert read_document(tmp_path / "win.txt", encoding="cp1252") == "naïve café – “quoted”\n"
    (tmp_path / "u16.md").write_bytes("# Überschrift\n".encode("utf-16"))  # a BOM says which
    assert read_document(tmp_path / "u16.md") == "# Überschrift\n"
    # A page's <meta charset> names its encoding; iso-8859-1 is read as windows-1252, as browsers do.
    body = "<p>Prix : 5 € – très “bon”</p>"
    for meta in ('<meta charset="iso-8859-1">',
                 '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'):
        (tmp_path / "fr.html").write_bytes(f"<html><head>{meta}</head><body>{body}</body></html>".encode("cp1252"))
        assert read_document(tmp_path / "fr.html") == "Prix : 5 € – très “bon”"
    # A byte-order mark, or text that is valid UTF-8, wins over a wrong declaration.
    (tmp_path / "fr.html").write_bytes(f'<meta charset="iso-8859-1"><body>{body}</body>'.encode("utf-8-sig"))
    assert read_document(tmp_path / "fr.html") == "Prix : 5 € – très “bon”"
    (tmp_path / "fr.html").write_bytes(f'<meta charset="iso-8859-1"><body>{body}</body>'.encode())
    assert read_document(tmp_path / "fr.html") == "Prix : 5 € – très “bon”"
    (tmp_path / "gb.html").write_bytes('<meta charset="gbk"><p>长城很长</p>'.encode("gbk"))
    assert read_document(tmp_path / "gb.html") == "长城很长"
    (tmp_path / "gb.html").write_bytes('<p>长城很长</p>'.encode("gbk"))  # no declaration: UTF-8, which it is not
    with pytest.raises(LlmlabError, match="gb.html: not valid UTF-8"):
        read_document(tmp_path / "gb.html")


W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def docx(body: str) -> bytes:
    """A .docx archive whose word/document.xml holds ``body`` (the parts Word adds around it are not read)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types '
                   'xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        z.writestr("word/document.xml", f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                                        f"<w:document {W}><w:body>{body}<w:sectPr/></w:body></w:document>")
    return out.getvalue()


def test_word_documents(tmp_path):
    body = (
        '<w:p><w:pPr><w:pStyle w:val="Heading1"/><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>'
        "<w:r><w:t>Service agreement</w:t></w:r></w:p>"
        '<w:p><w:r><w:t xml:space="preserve">The term is </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>12 months</w:t>'
        "</w:r><w:del><w:r><w:delText>24 months</w:delText></w:r></w:del><w:r><w:t>.</w:t><w:tab/><w:t>Signed"
        "</w:t><w:br/><w:t>by both.</w:t></w:r></w:p>"
        "<w:p/>"
        "<w:tbl><w:tblPr/><w:tr><w:tc><w:p><w:r><w:t>Fee</w:t></w:r></w:p></w:tc>"
        "<w:tc><w:p><w:r><w:t>€100</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"
        "<w:p><w:r><w:t>Main text</w:t><w:pict><w:txbxContent><w:p><w:r><w:t>In a text box</w:t></w:r></w:p>"
        "</w:txbxContent></w:pict><w:t> goes on.</w:t></w:r></w:p>"
        '<w:p><w:r><mc:AlternateContent xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006">'
        "<mc:Choice><w:drawing><w:txbxContent><w:p><w:r><w:t>Boxed once</w:t></w:r></w:p></w:txbxContent>"
        "</w:drawing></mc:Choice><mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>Boxed once</w:t></w:r></w:p>"
        "</w:txbxContent></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>"
    )
    (tmp_path / "contract.docx").write_bytes(docx(body))
    assert read_document(tmp_path / "contract.docx") == (
        "Service agreement\n\nThe term is 12 months.\tSigned\nby both.\n\nFee\n\n€100\n\n"
        "Main text goes on.\n\nIn a text box\n\nBoxed once")
    for name, data, message in [
        ("notes.docx", b"plain text, renamed", "not a valid .docx file (not a zip archive)"),
        ("old.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "a password-protected or legacy Word file"),
        ("blank.docx", docx("<w:p/>"), "the document has no text"),
        ("broken.docx", docx("<w:p><w:r>"), "the document's XML is damaged"),
        ("empty.docx", b"", "file is empty"),
    ]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(LlmlabError, match=f"{name}: {re.escape(message)}"):
            read_document(tmp_path / name)
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("content.xml", "<office:document/>")
    (tmp_path / "odt.docx").write_bytes(other.getvalue())
    with pytest.raises(LlmlabError, match="not a Word document"):
        read_document(tmp_path / "odt.docx")


def test_word_document_written_by_python_docx(tmp_path):
    """A file written by python-docx (the reference library for the format): the same paragraphs,
    in body order, as python-docx reads back, table cells included."""
    docx_lib = pytest.importorskip("docx")
    from docx.table import Table

    doc = docx_lib.Document()
    doc.add_heading("Service agreement", level=1)
    p = doc.add_paragraph("The term is ")
    p.add_run("12 months").bold = True
    run = p.add_run(".\tSigned")
    run.add_break()
    run.add_text("by both parties.")
    doc.add_paragraph("Fees are €100 – “payable” monthly.", style="List Bullet")
    table = doc.add_table(rows=2, cols=2)
    for (r, c), text in zip([(0, 0), (0, 1), (1, 0), (1, 1)], ["Item", "Price", "Support", "€20"]):
        table.cell(r, c).text = text
    doc.add_paragraph("")
    doc.add_page_break()
    doc.add_paragraph("Signed in Paris.")
    doc.save(tmp_path / "contract.docx")

    again = docx_lib.Document(str(tmp_path / "contract.docx"))
    expected = []
    for block in again.iter_inner_content():
        cells = [c for row in block.rows for c in row.cells] if isinstance(block, Table) else None
        for paragraph in ([q for c in cells for q in c.paragraphs] if cells is not None else [block]):
            if paragraph.text.strip():
                expected.append(paragraph.text.strip())
    assert len(expected) == 8
    assert read_document(tmp_path / "contract.docx") == "\n\n".join(expected)

def test_pdf_text(tmp_path):
    (tmp_path / "doc.pdf").write_bytes(minimal_pdf(["The harbour opened in 1901.", "It has two piers."]))
    text = read_document(tmp_path / "doc.pdf")
    assert "The harbour opened in 1901." in text and "It has two piers." in text


def test_pdf_errors(tmp_path):
    from pypdf import PdfWriter

    good = minimal_pdf(["Some text."])
    (tmp_path / "cut.pdf").write_bytes(good[:80])
    with pytest.raises(LlmlabError, match="cut.pdf: cannot read the PDF, the file looks damaged"):
        read_document(tmp_path / "cut.pdf")
    (tmp_path / "fake.pdf").write_bytes(b"hello, not a pdf")
    with pytest.raises(LlmlabError, match="not a PDF file"):
        read_document(tmp_path / "fake.pdf")

    def write(name, encrypt=False):
        writer = PdfWriter()
        writer.add_blank_page(200, 200)
        if encrypt:
            writer.encrypt("secret", algorithm="RC4-128")
        buf = io.BytesIO()
        writer.write(buf)
        (tmp_path / name).write_bytes(buf.getvalue())

    write("scan.pdf")
    with pytest.raises(LlmlabError, match="no extractable text .*OCR"):
        read_document(tmp_path / "scan.pdf")
    write("locked.pdf", encrypt=True)
    with pytest.raises(LlmlabError, match="password-protected"):
        read_document(tmp_path / "locked.pdf")


def test_other_errors(tmp_path):
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(LlmlabError, match="latin.txt: not valid UTF-8"):
        read_document(tmp_path / "latin.txt")
    (tmp_path / "empty.md").write_bytes(b"")
    with pytest.raises(LlmlabError, match="empty.md: file is empty"):
        read_document(tmp_path / "empty.md")
    (tmp_path / "blank.html").write_text("<script>only()</script>  ", encoding="utf-8")
    with pytest.raises(LlmlabError, match="blank.html: the document has no text"):
        read_document(tmp_path / "blank.html")
    (tmp_path / "x.rtf").write_bytes(b"{\\rtf1 text}")
    with pytest.raises(LlmlabError, match="unsupported document type '.rtf'"):
        read_document(tmp_path / "x.rtf")
    with pytest.raises(LlmlabError, match="no such file"):
        read_document(tmp_path / "missing.pdf")
    with pytest.raises(LlmlabError, match="is a folder; give one document"):
        read_document(tmp_path)
