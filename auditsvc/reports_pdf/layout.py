"""Page layout shared by the report documents (reportlab's platypus).

Letter pages, Helvetica, tables whose cells are paragraphs (so long text
wraps inside its column instead of running off the page), header rows
repeated on every page, and a footer with the page number and when and by
whom the document was generated.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import LETTER
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import inch
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from ..domain.report_integrity import IntegrityStatement

MARGIN = 0.7 * inch
WIDTH = LETTER[0] - 2 * MARGIN

_styles = getSampleStyleSheet()
TITLE = ParagraphStyle("title", parent=_styles["Title"], fontSize=16, leading=20, alignment=0, spaceAfter=6)
HEADING = ParagraphStyle("heading", parent=_styles["Heading2"], fontSize=12, leading=15, spaceBefore=10, spaceAfter=4)
BODY = ParagraphStyle("body", parent=_styles["BodyText"], fontSize=9.5, leading=12.5)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=8, leading=10)
CELL = ParagraphStyle("cell", parent=BODY, fontSize=8, leading=10)
HEAD_CELL = ParagraphStyle("head", parent=CELL, fontName="Helvetica-Bold")
MONO = ParagraphStyle("mono", parent=SMALL, fontName="Courier", fontSize=7.5, leading=9.5)


def text(value: object, style: ParagraphStyle = BODY) -> Paragraph:
    """A paragraph of plain text (escaped: event data is never markup)."""
    return Paragraph(escape(str(value)), style)


def marked(markup: str, style: ParagraphStyle = BODY) -> Paragraph:
    """A paragraph of this module's own markup (values escaped by the caller)."""
    return Paragraph(markup, style)


def day(stamp: str) -> str:
    """'2026-11-24T09:30:00.123456Z' -> '24 Nov 2026'."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).strftime("%d %b %Y").lstrip("0")


def minute(stamp: str) -> str:
    """'2026-11-24T09:30:00.123456Z' -> '24 Nov 2026 09:30 UTC'."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).strftime("%d %b %Y %H:%M UTC").lstrip("0")


def table(header: Sequence[str], rows: Sequence[Sequence[object]], widths: Sequence[float]) -> Table:
    """A table of wrapped cells; ``widths`` are fractions of the text width."""
    data = [[text(h, HEAD_CELL) for h in header]]
    data += [[c if isinstance(c, Flowable) else text(c, CELL) for c in row] for row in rows]
    t = Table(data, colWidths=[w * WIDTH for w in widths], repeatRows=1)
    t.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e4e8ee")),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa5b1")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f6f7f9")]),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return t


def integrity_section(statement: IntegrityStatement, what: str) -> list[Flowable]:
    """The integrity statement: the checkpoint, and what was proven against it."""
    return [
        text("Integrity statement", HEADING),
        text(
            f"Every {what} listed in this document was checked, when the document was made, against the "
            f"signed checkpoint below: the record of each was hashed as stored and its inclusion proof verified "
            f"against the checkpoint's root hash ({statement.events_checked} events proven included), and the "
            f"checkpoint's Ed25519 signature was verified with the log's verifier key. Anyone holding that key can "
            f"check the same proofs again (GET /v1/proofs/inclusion, or an evidence export).",
        ),
        Spacer(1, 4),
        table(
            ["checkpoint", ""],
            [
                ["log (origin)", statement.origin],
                ["tree size", f"{statement.tree_size} events"],
                ["root hash (SHA-256, hex)", text(statement.root_hash_hex, MONO)],
                ["signing key", f"{statement.key_name}, key id {statement.key_id_hex}"],
                ["checked at", statement.checked_at.strftime("%d %b %Y %H:%M:%S UTC").lstrip("0")],
            ],
            [0.28, 0.72],
        ),
        Spacer(1, 4),
        text("The signed checkpoint (C2SP signed note):", SMALL),
        marked("<br/>".join(escape(line) for line in statement.note.rstrip("\n").split("\n")), MONO),
    ]


def render(story: list[Flowable], *, title: str, footer: str) -> bytes:
    """The document's bytes; ``footer`` (generated at, by whom) on every page."""
    out = io.BytesIO()

    def on_page(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor("#4a5561"))
        canvas.drawString(MARGIN, 0.45 * inch, footer)
        canvas.drawRightString(LETTER[0] - MARGIN, 0.45 * inch, f"Page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(
        out,
        pagesize=LETTER,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=0.8 * inch,
        title=title,
        author="auditsvc",
        creator="auditsvc",
    )
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return out.getvalue()
