"""Reading documents the tests write: Markdown, HTML, a hand-made PDF, and every way they fail."""

import io

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
    (tmp_path / "x.docx").write_bytes(b"PK")
    with pytest.raises(LlmlabError, match="unsupported document type '.docx'"):
        read_document(tmp_path / "x.docx")
    with pytest.raises(LlmlabError, match="no such file"):
        read_document(tmp_path / "missing.pdf")
