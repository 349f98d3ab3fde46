"""What the billing run does to a plan, under its row lock (SPEC R9, R10, R12): the events
of ``app.plan.transitions``, written by ``app.plan.repository``, with their invoices and
audit events.

Each function re-checks its condition with the plan locked, so a second run, a request, or
a retry of the same run finds nothing left to do and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.periods import BillingCycle, Period, renewal_after
from app.billing.pricing import renewal_amount
from app.directory.models import Account
from app.ids import new_id
from app.ledger import invoices
from app.ledger import repository as ledger
from app.ledger.models import Invoice, InvoiceStatus
from app.plan import repository as plan_repo
from app.plan import transitions
from app.seats import rules, schedules
from app.seats.models import Plan
from app.seats.service import plan_state

SYSTEM = "system:billing"


async def expire_trial(session: AsyncSession, plan: Plan, now: datetime) -> bool:
    """R10: an ended trial becomes ``trial_expired`` with 0 seats; assignments are kept."""
    change = transitions.expire_trial(plan.status, plan.trial_ends_at, now)
    if change is None:
        return False
    before = plan.seats
    plan_repo.apply(plan, change, now)
    await ledger.add_event(
        session,
        account_id=plan.account_id,
        type="trial.expired",
        actor=SYSTEM,
        at=now,
        data={"seats_before": before, "seats_after": 0, "assigned": plan.assigned},
    )
    return True


async def invoice_renewal(
    session: AsyncSession,
    plan: Plan,
    account: Account,
    now: datetime,
    unit_price: int,
    prefix: str,
) -> bool | None:
    """R9, R12: move a plan whose period ended into the next period, invoicing it.

    None when nothing is due, True when an invoice was made, False for a period of 0 seats
    (moved on, nothing to charge). The next period follows the account's anchor and cycle of
    now; when the old end is not one of that schedule's boundaries the invoice bills only the
    days from the old end (a bridge, §3), and the plan's period is still a whole period.
    ``prefix`` starts the invoice's number (SEATS_INVOICE_PREFIX).
    """
    if not plan.status.is_paid or plan.period_start is None or plan.period_end is None:
        return None
    if plan.period_end > now.date():
        return None
    if plan.pending_invoice_id is not None:
        # A purchase waits for its charge and will change the seat total: renewing first
        # would bill the next period for the old total and leave the added seats unbilled.
        # The run renews once the purchase is settled or voided (R14).
        return None
    seats_before = plan.seats  # in the period that ended: the line shows before -> after
    if rules.decrease_due(plan_state(plan), now):
        # R15: the decrease took effect at this period's end; the renewal bills its total.
        await schedules.apply_scheduled_change(session, plan, now=now, actor=SYSTEM)
    cycle = BillingCycle(account.billing_cycle)
    renewal = renewal_after(
        account.billing_anchor, cycle, Period(plan.period_start, plan.period_end)
    )
    period, billed = renewal.period, renewal.billed
    plan_repo.apply(plan, transitions.renew(period, cycle), now)
    data: dict[str, object] = {
        "seats": plan.seats,
        "period_start": period.start,
        "period_end": period.end,
    }
    if plan.seats == 0:
        await ledger.add_event(
            session,
            account_id=plan.account_id,
            type="plan.renewed",
            actor=SYSTEM,
            at=now,
            data=data,
        )
        return False
    total = renewal_amount(plan.seats, unit_price, cycle, renewal)
    if renewal.is_bridge:
        data["billed_from"] = billed.start
    with session.no_autoflush:  # the batch's invoices are still written in one flush
        number = await ledger.take_number(session, plan.account_id, prefix)
    invoice = ledger.add_invoice(
        session,
        invoices.renewal(
            id=new_id("inv"),
            number=number,
            account_id=plan.account_id,
            currency=account.currency,
            payment_method=account.payment_method,
            seats_before=seats_before,
            seats_after=plan.seats,
            unit_price=unit_price,
            cycle=cycle,
            period=period,
            billed=billed,
            amount=total,
            created_by=SYSTEM,
            created_at=now,
        ),
    )
    data["invoice_id"] = invoice.id
    await _renewed(session, plan, now, data)
    return True


async def renewal_not_invoiced(
    session: AsyncSession, plan: Plan, now: datetime, reason: str
) -> bool:
    """R18: the plan's period ended and its renewal cannot be invoiced (no price for its
    currency, an amount the ledger cannot hold, a bug): it is past due, as after a declined
    renewal (R9), so that its agents keep access through the dunning window counted from the
    period's end (``unrenewed_since``) and then lose it. True if it became past due now."""
    change = transitions.go_past_due(plan.status)
    if change is None:
        return False
    plan_repo.apply(plan, change, now)
    await ledger.add_event(
        session,
        account_id=plan.account_id,
        type="plan.past_due",
        actor=SYSTEM,
        at=now,
        data={"invoice_id": None, "reason": reason, "period_end": plan.period_end},
    )
    return True


def unrenewed_since(plan: Plan, now: datetime) -> datetime | None:
    """When the plan's paid period ended, if it ended and no renewal has followed it (one that
    could not be invoiced, R18); None otherwise."""
    if plan.period_end is None or plan.period_end > now.date():
        return None
    return datetime.combine(plan.period_end, time(), UTC)


async def _renewed(
    session: AsyncSession, plan: Plan, now: datetime, data: dict[str, object]
) -> None:
    await ledger.add_event(
        session, account_id=plan.account_id, type="plan.renewed", actor=SYSTEM, at=now, data=data
    )


async def cancel(
    session: AsyncSession, plan: Plan, outstanding: list[Invoice], now: datetime
) -> None:
    """R9: dunning ended: the plan is canceled with 0 seats (assignments kept, no access) and
    its outstanding renewals are uncollectible; a later purchase restarts it."""
    # A decrease scheduled for the end of a period the plan no longer has is moot.
    await schedules.drop_scheduled_change(
        session, plan, now=now, actor=SYSTEM, reason="plan_canceled"
    )
    before = plan.seats
    plan_repo.apply(plan, transitions.cancel(), now)
    for invoice in outstanding:
        invoice.status = InvoiceStatus.UNCOLLECTIBLE
        invoice.failure_reason = "uncollectible: dunning ended"
    await session.flush()
    await ledger.add_event(
        session,
        account_id=plan.account_id,
        type="plan.canceled",
        actor=SYSTEM,
        at=now,
        data={
            "seats_before": before,
            "seats_after": 0,
            "assigned": plan.assigned,
            "uncollectible": [i.id for i in outstanding],
        },
    )
