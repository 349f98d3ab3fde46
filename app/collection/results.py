"""What a collection result answers over HTTP, written once (SPEC §4, §6).

A purchase, ``POST .../invoices/{id}/pay`` and anything else that collects while a caller waits
ask ``raise_for``: a paid invoice is theirs to answer; every other result is the same problem
on every route.
"""

from __future__ import annotations

from app.collection.policy import Wait
from app.collection.service import Collected
from app.errors import (
    InvoiceNotPayable,
    PaymentDeclined,
    PaymentPending,
    PaymentUnavailable,
    PurchaseVoided,
)
from app.ledger.models import AttemptOutcome, InvoiceStatus


def raise_for(collected: Collected) -> None:
    """Return when the invoice is paid; else raise the problem its result answers."""
    invoice = collected.invoice
    if invoice.status is InvoiceStatus.PAID:
        return
    if invoice.status is InvoiceStatus.VOID:
        raise PurchaseVoided(
            "The payment got no definitive answer in time and was voided; nothing was "
            "charged. Buy again with a new Idempotency-Key.",
            invoice_id=invoice.id,
        )
    if invoice.status is InvoiceStatus.FAILED or collected.outcome is AttemptOutcome.DECLINED:
        reason = invoice.failure_reason or collected.reason
        raise PaymentDeclined(
            f"The payment method was declined ({reason}); nothing was charged.",
            invoice_id=invoice.id,
            reason=reason,
        )
    if invoice.status is not InvoiceStatus.PENDING:
        raise InvoiceNotPayable(f"The invoice is {invoice.status.value}, not outstanding.")
    if collected.outcome is AttemptOutcome.REJECTED:
        raise PaymentUnavailable(
            "The payments service refused the request; nothing was charged. The invoice "
            "stays pending until the service accepts requests again.",
            invoice_id=invoice.id,
        )
    if collected.wait is Wait.IN_FLIGHT:
        raise PaymentPending(
            "A charge of this invoice is in flight; retry shortly.", invoice_id=invoice.id
        )
    raise PaymentPending(
        "The payment service did not answer; the invoice stays pending: a retry completes "
        "it (a purchase with the same Idempotency-Key), or the billing run does.",
        invoice_id=invoice.id,
    )
