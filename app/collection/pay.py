"""``POST .../invoices/{id}/pay``: an admin retries an outstanding invoice now (R9)."""

from __future__ import annotations

from fastapi.encoders import jsonable_encoder

from app.auth import Caller
from app.collection.policy import Mode
from app.collection.results import raise_for
from app.collection.service import Collected, Collector
from app.db import Database
from app.errors import InvoiceNotFound, InvoiceNotPayable
from app.idempotency import Once, StoredResponse
from app.ledger import repository as ledger
from app.ledger.models import InvoiceStatus
from app.ledger.schemas import InvoiceOut


async def pay_invoice(
    db: Database,
    collector: Collector,
    once: Once,
    caller: Caller,
    invoice_id: str,
) -> StoredResponse:
    """Charge an outstanding invoice now with the account's payment method of now."""
    caller.require_primary_admin()

    async def work() -> StoredResponse:
        async with db.transaction() as session:
            invoice = await ledger.get_invoice(session, invoice_id)
        if invoice is None or invoice.account_id != caller.account_id:
            raise InvoiceNotFound(f"No invoice {invoice_id!r} in this account.")
        if invoice.status is not InvoiceStatus.PENDING:
            raise InvoiceNotPayable(f"The invoice is {invoice.status.value}, not outstanding.")
        return await _answer(db, await collector.collect(invoice.id, caller.actor, Mode.MANUAL))

    return await once.execute(work)


async def _answer(db: Database, collected: Collected) -> StoredResponse:
    raise_for(collected)
    async with db.transaction() as session:
        fresh = await ledger.get_invoice(session, collected.invoice.id)
    return StoredResponse(200, jsonable_encoder(InvoiceOut.model_validate(fresh)))
