"""An invoice as a document a finance team files (SPEC §10): a PDF rendered in-process.

fpdf2 (pure Python, no browser, no network) writes it with DejaVu Sans, shipped beside this
module (``fonts/``, its licence with it; cut to the Latin, Greek, Cyrillic and Georgian
scripts, punctuation, currency signs and arrows) and embedded as a subset, so account names in
those scripts render in a container without system fonts too (a glyph outside them is drawn
as an empty box, and fpdf2 logs it). Every figure is text (``pdftotext`` reads it back).

Bounded: at most ``MAX_LINES`` lines are drawn (the builder makes one; more would be told to
look in the CSV export), and each field is cut at its column's length, so the largest invoice
the ledger can hold is at most ``MAX_PAGES`` pages and ``MAX_BYTES`` bytes (tests/ledger proves
it by rendering it), and ``app.ledger.service`` runs at most two renders at once per
process. Deterministic: the same invoice renders the same bytes but for the PDF's
creation date (its ``/ID`` is derived from the invoice, not from the bytes).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from fpdf import FPDF

from app.billing.money import format_amount
from app.config import InvoiceIssuer
from app.ledger.invoices import MAX_LINES, long_date
from app.ledger.models import InvoiceKind, InvoiceStatus
from app.ledger.schemas import InvoiceLineOut, InvoiceOut

FONTS = Path(__file__).resolve().parent / "fonts"
FONT = "DejaVu"
# The largest document the bounds above allow is far smaller; this is the promise tests hold.
MAX_BYTES = 256 * 1024
MAX_PAGES = 20

_KIND = {InvoiceKind.PURCHASE: "Seat purchase", InvoiceKind.RENEWAL: "Renewal"}


def status_in_words(invoice: InvoiceOut) -> str:
    """The invoice's status for a reader, in words (the gateway's codes stay in the API): a
    declined attempt says it was not paid."""
    if invoice.status is InvoiceStatus.PAID:
        return "Paid"
    if invoice.status is InvoiceStatus.FAILED:
        return "Payment attempt declined: not paid, nothing was charged"
    if invoice.status is InvoiceStatus.VOID:
        return "Void: not paid, nothing was charged"
    if invoice.status is InvoiceStatus.UNCOLLECTIBLE:
        return "Uncollectible: not paid, the plan was canceled"
    if invoice.failure_reason:
        return "Not paid yet: the last payment attempt was declined"
    return "Not paid yet: payment pending"


def moment(at: datetime) -> str:
    """A time in the documents' one format: "November 21, 2026, 12:00 UTC"."""
    return f"{long_date(at.date())}, {at:%H:%M} UTC"


class _Pdf(FPDF):
    def __init__(self, file_id: str) -> None:
        super().__init__(format="A4")
        self._file_id = file_id

    def file_id(self) -> str:  # fpdf2's hook: an id of the invoice, not of the bytes
        return f"<{self._file_id}><{self._file_id}>"

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=8)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="C")


def render(
    invoice: InvoiceOut, account_id: str, account_name: str, issuer: InvoiceIssuer, at: datetime
) -> bytes:
    """The invoice as a PDF; ``at`` (the render's time) is only its creation-date metadata."""
    pdf = _Pdf(
        hashlib.md5(f"{invoice.id}:{invoice.number}".encode(), usedforsecurity=False)
        .hexdigest()
        .upper()
    )
    pdf.set_creation_date(at)
    pdf.set_title(f"Invoice {invoice.number}")
    pdf.set_author(issuer.name[:200])
    pdf.set_creator("Conversations seats")
    pdf.set_producer("Conversations seats")
    pdf.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(15, 15, 15)
    pdf.add_page()
    width = pdf.epw

    pdf.set_font(FONT, "B", 18)
    pdf.cell(width / 2, 10, "Invoice")
    pdf.set_font(FONT, "B", 12)
    pdf.cell(width / 2, 10, invoice.number, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    pdf.set_font(FONT, "B", 10)
    pdf.multi_cell(width, 5, issuer.name[:200], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)
    for address_line in issuer.address.splitlines()[:8]:
        pdf.multi_cell(width, 4.5, address_line[:200], new_x="LMARGIN", new_y="NEXT")
    if issuer.tax_id:
        pdf.multi_cell(width, 4.5, f"Tax ID: {issuer.tax_id[:100]}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    pdf.set_font(FONT, "", 9)
    pdf.cell(width, 4.5, "Billed to", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "B", 10)
    pdf.multi_cell(width, 5, account_name[:200], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)
    pdf.cell(width, 4.5, f"Account {account_id}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    facts = [
        ("Invoice number", invoice.number),
        ("Issued", moment(invoice.created_at)),
        ("For", _KIND[invoice.kind]),
        ("Status", status_in_words(invoice)),
    ]
    if invoice.status is InvoiceStatus.PAID and invoice.paid_at is not None:
        facts.append(("Paid", moment(invoice.paid_at)))
        if invoice.charge_id:
            facts.append(("Charge", invoice.charge_id[:200]))
    for label, value in facts:
        pdf.set_font(FONT, "", 9)
        pdf.cell(35, 5, label)
        pdf.set_font(FONT, "B" if label == "Status" else "", 9)
        pdf.multi_cell(width - 35, 5, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    for line in invoice.lines[:MAX_LINES]:
        _line(pdf, line, invoice.currency, width)
    if len(invoice.lines) > MAX_LINES:
        pdf.set_font(FONT, "", 9)
        more = len(invoice.lines) - MAX_LINES
        pdf.cell(
            width,
            5,
            f"... and {more} more lines: see the CSV export.",
            new_x="LMARGIN",
            new_y="NEXT",
        )

    pdf.ln(2)
    pdf.set_draw_color(0)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
    pdf.ln(2)
    pdf.set_font(FONT, "B", 11)
    pdf.cell(width / 2, 7, "Total")
    pdf.cell(
        width / 2,
        7,
        format_amount(invoice.total, invoice.currency),
        align="R",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    if invoice.status is not InvoiceStatus.PAID:
        pdf.set_font(FONT, "", 9)
        pdf.cell(width, 5, "Amount paid: none", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _line(pdf: FPDF, line: InvoiceLineOut, currency: str, width: float) -> None:
    pdf.set_font(FONT, "B", 9)
    pdf.multi_cell(width, 5, line.description[:300], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)
    seats = (
        f"Seats {line.seats_before} \u2192 {line.seats_after}"
        if line.seats_before is not None and line.seats_after is not None
        else f"Seats {line.seats_after if line.seats_after is not None else line.quantity}"
    )
    days = (
        f"{line.days} of {line.days_in_period} days"
        if line.days is not None and line.days_in_period is not None
        else "Whole period"
    )
    price = f"{line.quantity} \u00d7 {format_amount(line.unit_price, currency)}"
    cells = [(seats, 0.22), (price, 0.3), (days, 0.2)]
    for text, share in cells:
        pdf.cell(width * share, 5, text)
    pdf.cell(
        width * 0.28,
        5,
        format_amount(line.amount, currency),
        align="R",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_font(FONT, "", 8)
    period = f"Period {long_date(line.period_start)} \u2013 {long_date(line.period_end)}"
    pdf.cell(width, 4.5, period, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
