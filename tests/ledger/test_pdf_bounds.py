"""The invoice PDF is deterministic and bounded (SPEC §10), proven by property, not by time:
the same invoice renders the same bytes but for the creation date, and the largest invoice the
ledger can hold (the most lines a document draws, every text at its column's length, amounts
at the 64-bit limit) renders within ``MAX_PAGES`` pages and ``MAX_BYTES`` bytes."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from app.config import InvoiceIssuer
from app.ledger.document import FONTS, MAX_BYTES, MAX_PAGES, render
from app.ledger.invoices import MAX_LINES
from app.ledger.schemas import InvoiceLineOut, InvoiceOut

BIG = 2**63 - 1
ISSUER = InvoiceIssuer(name="Conversations Inc.", address="1 Harbour Street", tax_id="EU123")


def invoice(
    lines: int, *, text: str = "Conversations seats 10 → 12", amount: int = 1267
) -> InvoiceOut:
    return InvoiceOut(
        id="inv_01jb0000000000000000000000",
        number="INV-QIVTHLMH-0002",
        kind="purchase",
        status="paid",
        currency="USD",
        total=amount,
        lines=[
            InvoiceLineOut(
                description=text,
                quantity=1_000_000_000,
                unit_price=amount,
                amount=amount,
                period_start=date(2026, 11, 21),
                period_end=date(2026, 12, 1),
                seats_before=1_000_000_000,
                seats_after=1_000_000_000,
                days=365,
                days_in_period=366,
            )
            for _ in range(lines)
        ],
        created_at=datetime(2026, 11, 21, 12, tzinfo=UTC),
        paid_at=datetime(2026, 11, 21, 12, tzinfo=UTC),
        charge_id="ch_" + "x" * 197,
        failure_reason=None,
    )


def without_creation_date(pdf: bytes) -> bytes:
    return re.sub(rb"/CreationDate \(D:\d{14}Z\)", b"", pdf)


def test_the_same_invoice_renders_the_same_bytes_but_its_creation_date() -> None:
    one = render(invoice(1), "acme", "Ácme", ISSUER, datetime(2026, 11, 21, tzinfo=UTC))
    two = render(invoice(1), "acme", "Ácme", ISSUER, datetime(2027, 5, 1, 8, 30, tzinfo=UTC))
    assert b"/CreationDate (D:20261121000000Z)" in one
    assert b"/CreationDate (D:20270501083000Z)" in two
    assert one != two
    assert without_creation_date(one) == without_creation_date(two)


def test_the_largest_invoice_renders_within_its_page_and_size_bounds(tmp_path: Path) -> None:
    """More lines than a document draws, each at the description column's 300 characters,
    the longest names, seat totals at the input bound and amounts at the 64-bit limit."""
    issuer = InvoiceIssuer(name="N" * 200, address="\n".join(["A" * 60] * 8), tax_id="T" * 100)
    huge = invoice(MAX_LINES + 50, text="Ω" * 300, amount=BIG)
    pdf = render(huge, "a" * 64, "Ü" * 200, issuer, datetime(2026, 11, 21, tzinfo=UTC))
    # The bounds the document promises, stated here: a test that read them from the module
    # would follow any change to them.
    assert (MAX_PAGES, MAX_BYTES) == (20, 256 * 1024)
    assert len(pdf) <= 256 * 1024, len(pdf)
    pages = len(re.findall(rb"/Type /Page\b", pdf))
    assert pages > 1, pages  # more lines than one page holds: the document paginates
    assert pages <= 20, pages
    if shutil.which("pdftotext"):
        path = tmp_path / "huge.pdf"
        path.write_bytes(pdf)
        text = subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "and 50 more lines: see the CSV export." in text
        # Each line's unit price and amount, and the total.
        assert text.count("USD 92,233,720,368,547,758.07") == 2 * MAX_LINES + 1


@pytest.mark.parametrize(
    ("currency", "amount", "shown"),
    [("USD", 123456, "USD 1,234.56"), ("JPY", 5000, "JPY 5,000"), ("KWD", 1234, "KWD 1.234")],
)
def test_the_total_is_formatted_with_the_currency_s_exponent(
    currency: str, amount: int, shown: str, tmp_path: Path
) -> None:
    doc = invoice(1, amount=amount).model_copy(update={"currency": currency})
    pdf = render(doc, "acme", "Acme", ISSUER, datetime(2026, 11, 21, tzinfo=UTC))
    if not shutil.which("pdftotext"):
        pytest.skip("needs pdftotext")
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(rf"Total\s+{re.escape(shown)}\n", text), text


def test_the_fonts_ship_in_the_package_with_their_licence() -> None:
    """The image has no fonts (python:3.11-slim): the package carries its own, licence beside."""
    assert {p.name for p in FONTS.iterdir()} >= {
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
        "LICENSE",
    }
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"app.ledger" = ["fonts/*"]' in pyproject
