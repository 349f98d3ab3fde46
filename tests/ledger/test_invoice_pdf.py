"""SPEC §10: the invoice PDF, read back with ``pdftotext`` (Debian's poppler-utils) and compared,
figure by figure, with the ledger as the API shows it, for every kind and status an invoice can
have: a purchase paid, declined, pending and void; a renewal paid, pending and uncollectible.

One PDF page of each is also rendered as a PNG (``pdftoppm``) under ``$SEATS_TEST_ARTIFACTS``
(default ``/tmp/seats-artifacts``)/invoices, for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, problem
from tests.seats.helpers import billing_run, invoices

ISSUER = {"name": "Conversations Inc.", "address": "1 Harbour Street\nPort Town", "tax_id": "EU123"}
ARTIFACTS = Path(os.environ.get("SEATS_TEST_ARTIFACTS", "/tmp/seats-artifacts")) / "invoices"

pytestmark = pytest.mark.skipif(
    shutil.which("pdftotext") is None and not os.environ.get("CI"),
    reason="needs poppler-utils (pdftotext)",
)


def usd(minor: int) -> str:
    """Written independently of the service's formatter: the test's own idea of USD."""
    return f"USD {minor // 100:,}.{minor % 100:02d}"


def day(iso: str) -> str:
    d = date.fromisoformat(iso)
    return f"{d:%B} {d.day}, {d.year}"


def moment(iso: str) -> str:
    t = datetime.fromisoformat(iso).astimezone(UTC)
    return f"{day(t.date().isoformat())}, {t:%H:%M} UTC"


def pdf_text(pdf: bytes, tmp: Path, name: str) -> str:
    path = tmp / f"{name}.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "80",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(path),
            str(ARTIFACTS / name),
        ],
        check=True,
    )
    return re.sub(r"[ ]{2,}", "  ", out.stdout)  # columns: any run of spaces is one gap


STATUS_WORDS = {
    "paid": "Paid",
    "failed": "Payment attempt declined: not paid, nothing was charged",
    "void": "Void: not paid, nothing was charged",
    "uncollectible": "Uncollectible: not paid, the plan was canceled",
}


async def assert_pdf_is_the_ledger(
    api: Api, account_id: str, name: str, invoice_id: str, tmp: Path, label: str
) -> None:
    """Every figure of the invoice (as ``GET /invoices/{id}`` shows it) is in its PDF."""
    invoice = (await api.call("GET", account_id, f"/invoices/{invoice_id}")).json()
    r = await api.call("GET", account_id, f"/invoices/{invoice_id}/pdf")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert invoice["number"] in r.headers["content-disposition"]
    text = pdf_text(r.content, tmp, label)

    assert f"Invoice  {invoice['number']}" in text
    assert f"Invoice number  {invoice['number']}" in text
    assert "Conversations Inc.\n1 Harbour Street\nPort Town\nTax ID: EU123" in text
    assert f"Billed to\n{name}\nAccount {account_id}" in text
    assert f"Issued  {moment(invoice['created_at'])}" in text
    assert f"For  {'Seat purchase' if invoice['kind'] == 'purchase' else 'Renewal'}" in text
    if invoice["status"] == "pending":
        words = (
            "Not paid yet: the last payment attempt was declined"
            if invoice["failure_reason"]
            else "Not paid yet: payment pending"
        )
    else:
        words = STATUS_WORDS[invoice["status"]]
    assert f"Status  {words}\n" in text
    for line in invoice["lines"]:
        assert f"{line['description']}\n" in text
        days = (
            f"{line['days']} of {line['days_in_period']} days"
            if line["days"] is not None
            else "Whole period"
        )
        figures = (
            f"Seats {line['seats_before']} → {line['seats_after']}  "
            f"{line['quantity']} \u00d7 {usd(line['unit_price'])}  {days}  {usd(line['amount'])}\n"
        )
        assert figures in text, (figures, text)
        period = f"Period {day(line['period_start'])} \u2013 {day(line['period_end'])}\n"
        assert period in text
    assert f"Total  {usd(invoice['total'])}\n" in text
    if invoice["status"] == "paid":
        assert f"Paid  {moment(invoice['paid_at'])}\n" in text
        assert f"Charge  {invoice['charge_id']}\n" in text
        assert "Amount paid: none" not in text
    else:
        assert "Charge  " not in text and "Paid  " not in text
        assert "Amount paid: none" in text
    # No date in another format (ISO) among the long ones.
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text), text


def latest(found: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(i for i in found if i["kind"] == kind)


@pytest.mark.settings(invoice_issuer=ISSUER, pending_purchase_hours=1, dunning_days=14)
async def test_every_invoice_kind_and_status_renders_a_pdf_whose_figures_are_the_ledgers(
    api: Api, tmp_path: Path
) -> None:
    acme = "Ácme Çorp — Ωmega Ltd"
    await api.put_account("acme", name=acme)
    assert (await api.buy(10)).status_code == 201
    await api.put_account("acme", name=acme, payment_method="pm_decline_card")
    problem(await api.buy(12), 402, "payment_declined")
    await api.put_account("acme", name=acme)
    declined, bought = await invoices(api)
    await assert_pdf_is_the_ledger(api, "acme", acme, bought["id"], tmp_path, "purchase-paid")
    await assert_pdf_is_the_ledger(api, "acme", acme, declined["id"], tmp_path, "purchase-failed")

    await api.put_account("globex", name="Globex", payment_method="pm_unavailable")
    assert (await api.buy(3, account_id="globex", user="gina")).status_code == 503
    (stuck,) = await invoices(api, "globex")
    assert stuck["status"] == "pending"
    await assert_pdf_is_the_ledger(
        api, "globex", "Globex", stuck["id"], tmp_path, "purchase-pending"
    )

    await api.set_clock(datetime(2026, 12, 1, 1, tzinfo=UTC))
    await billing_run(api)
    renewal = latest(await invoices(api), "renewal")
    assert renewal["status"] == "paid"
    await assert_pdf_is_the_ledger(api, "acme", acme, renewal["id"], tmp_path, "renewal-paid")
    (voided,) = await invoices(api, "globex")
    assert voided["status"] == "void"
    await assert_pdf_is_the_ledger(api, "globex", "Globex", voided["id"], tmp_path, "purchase-void")

    await api.put_account("acme", name=acme, payment_method="pm_decline_card")
    first_decline = datetime(2027, 1, 1, 1, tzinfo=UTC)
    await api.set_clock(first_decline)
    await billing_run(api)
    unpaid = latest(await invoices(api), "renewal")
    assert (unpaid["status"], unpaid["failure_reason"] is not None) == ("pending", True)
    await assert_pdf_is_the_ledger(api, "acme", acme, unpaid["id"], tmp_path, "renewal-pending")

    await api.set_clock(first_decline + timedelta(days=15))
    await billing_run(api)
    (written_off,) = [i for i in await invoices(api) if i["id"] == unpaid["id"]]
    assert written_off["status"] == "uncollectible"
    await assert_pdf_is_the_ledger(
        api, "acme", acme, written_off["id"], tmp_path, "renewal-uncollectible"
    )


async def test_the_pdf_is_for_admins_and_services_of_the_account_only(api: Api) -> None:
    assert (await api.buy(2)).status_code == 201
    (invoice,) = await invoices(api)
    path = f"/invoices/{invoice['id']}/pdf"
    assert (await api.call("GET", "acme", path, user="bob")).status_code == 200
    problem(await api.call("GET", "acme", path, user="carol"), 403, "not_admin")
    problem(await api.call("GET", "globex", path), 404, "invoice_not_found")
    problem(await api.call("GET", "acme", "/invoices/inv_nope/pdf"), 404, "invoice_not_found")
