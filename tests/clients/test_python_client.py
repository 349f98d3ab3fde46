"""A Python client generated with openapi-python-client drives the whole seed flow.

The client is generated from the document the running server (``seats serve``) serves and
is the only thing that talks to it: if the document stops describing what the service does
(a status, a body, a header), generation, parsing or these checks fail.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.clients.conftest import tool_or_skip
from tests.conftest import NOW, service_token, user_token
from tests.live import LiveServer

pytestmark = pytest.mark.server

PACKAGE = "seats_client"


@pytest.fixture
def client_package(document: bytes, tmp_path: Path) -> Iterator[ModuleType]:
    """The generated client package, importable as ``seats_client`` for this test."""
    generator = tool_or_skip("openapi-python-client")
    (tmp_path / "openapi.json").write_bytes(document)
    out = tmp_path / "generated" / PACKAGE
    # A PDF is a binary body: the generator reads binary bodies under octet-stream only.
    (tmp_path / "config.json").write_text(
        '{"content_type_overrides": {"application/pdf": "application/octet-stream"}}'
    )
    # the generator formats its output with ruff, found on PATH next to it
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    command = [generator, "generate", "--path", "openapi.json", "--output-path", str(out)]
    command += ["--config", "config.json"]
    run = subprocess.run(
        [*command, "--meta", "none"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # a schema it could not read is a warning, not a failure: the document must have none
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    sys.path.insert(0, str(out.parent))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out.parent))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


class Flow:
    """The generated client's operations, called as the service, or as a user of acme."""

    def __init__(self, package: ModuleType, base_url: str) -> None:
        self.package = package
        self.m = importlib.import_module(f"{PACKAGE}.models")
        client_module = importlib.import_module(f"{PACKAGE}.client")
        # an answer the document does not declare raises instead of parsing as None
        self.service = client_module.AuthenticatedClient(
            base_url=base_url, token=service_token(), raise_on_unexpected_status=True
        )
        self.users = {
            user: client_module.AuthenticatedClient(
                base_url=base_url,
                token=user_token("acme", user),
                raise_on_unexpected_status=True,
            )
            for user in ("alice", "bob", "carol")
        }

    def op(self, tag: str, name: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")

    def call(self, tag: str, name: str, *args: Any, as_: str = "alice", **kwargs: Any) -> Any:
        client = self.service if as_ == "service" else self.users[as_]
        return self.op(tag, name).sync_detailed(*args, client=client, **kwargs)

    def clock(self, now: datetime) -> None:
        r = self.call(
            "internal_testing", "set_test_clock", as_="service", body=self.m.TestClockRequest(now)
        )
        assert r.status_code == 200 and r.parsed.now == now

    def account(self, payment_method: str) -> int:
        body = self.m.AccountRequest(
            name="Acme",
            billing_cycle=self.m.BillingCycle.MONTHLY,
            billing_anchor=date(2026, 11, 1),
            payment_method=payment_method,
        )
        r = self.call("internal_directory", "upsert_account", "acme", as_="service", body=body)
        assert isinstance(r.parsed, self.m.Account), r.content
        assert r.parsed.payment_method == payment_method
        return int(r.status_code)

    def billing_run(self) -> Any:
        r = self.call("internal_billing", "run_billing", as_="service")
        assert isinstance(r.parsed, self.m.BillingRunReport), r.content
        assert r.parsed.errors == []
        return r.parsed

    def plan(self) -> Any:
        r = self.call("seats", "get_plan", "acme")
        assert isinstance(r.parsed, self.m.Plan), r.content
        return r.parsed


def test_the_seed_flow_through_the_generated_python_client(
    client_package: ModuleType, live: LiveServer
) -> None:
    f = Flow(client_package, live.url)
    m = f.m

    # the platform creates the account and its users
    f.clock(NOW)
    assert f.account("pm_card_visa") == 201
    for user, role in (("alice", "primary_admin"), ("bob", "admin"), ("carol", "user")):
        body = m.UserRequest(email=f"{user}@acme.test", name=user.title(), role=m.Role(role))
        r = f.call("internal_directory", "upsert_user", "acme", user, as_="service", body=body)
        assert r.status_code == 201 and isinstance(r.parsed, m.User)

    # trial, then agents
    r = f.call("seats", "start_trial", "acme")
    assert r.status_code == 201
    assert (r.parsed.status, r.parsed.seats) == (m.PlanStatus.TRIALING, 20)
    assert r.parsed.trial.seats == 20
    for user in ("bob", "carol"):
        r = f.call("seats", "assign_agent", "acme", user)
        assert r.status_code == 201 and r.parsed.user_id == user
    assert f.call("seats", "assign_agent", "acme", "bob").status_code == 200  # a no-op
    r = f.call("seats", "check_agent", "acme", "carol", as_="carol")
    assert (r.parsed.agent, r.parsed.active) == (True, True)
    r = f.call("seats", "unassign_agent", "acme", "carol", as_="carol")
    assert r.status_code == 403 and r.parsed.code.value == "not_admin"

    # quote, then purchase with its key, then the replay
    r = f.call("seats", "create_quote", "acme", body=m.QuoteRequest(seats=25))
    quote = r.parsed
    assert r.status_code == 201 and isinstance(quote, m.Quote)
    assert quote.seats == 25 and quote.allowed
    key = str(uuid.uuid4())
    body = m.PurchaseRequest(seats=25, quote_id=quote.id)
    first = f.call("seats", "purchase_seats", "acme", body=body, idempotency_key=key)
    assert first.status_code == 201, first.content
    purchase = first.parsed
    assert purchase.summary.status == m.PlanStatus.ACTIVE and purchase.summary.seats == 25
    assert purchase.invoice.status == m.InvoiceStatus.PAID
    assert purchase.invoice.total == quote.due_now > 0
    assert "Idempotent-Replayed" not in first.headers
    again = f.call("seats", "purchase_seats", "acme", body=body, idempotency_key=key)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.parsed.invoice.id == purchase.invoice.id
    assert again.headers["X-Request-ID"] != first.headers["X-Request-ID"]

    # a refused removal says how many are assigned, typed; then a removal
    r = f.call("seats", "remove_seats", "acme", body=m.RemovalRequest(seats=1))
    assert r.status_code == 409
    assert isinstance(r.parsed, m.RemoveSeatsConflictProblem)
    assert r.parsed.code == m.RemoveSeatsConflictProblemCode.SEATS_ASSIGNED
    assert r.parsed.assigned == 2
    assert "unassign 1 agent first" in r.parsed.detail
    r = f.call("seats", "remove_seats", "acme", body=m.RemovalRequest(seats=10))
    assert r.status_code == 200 and r.parsed.seats == 10 and r.parsed.available == 8

    # R15: a decrease for the period's end, shown in the summary, then canceled
    body = m.RemovalRequest(seats=5, effective=m.Effective.PERIOD_END)
    r = f.call("seats", "remove_seats", "acme", body=body)
    assert r.status_code == 200 and r.parsed.seats == 10
    assert isinstance(r.parsed.scheduled_change, m.ScheduledChange)
    assert r.parsed.scheduled_change.seats == 5 and r.parsed.available == 3
    r = f.call("seats", "cancel_scheduled_change", "acme")
    assert r.status_code == 204
    r = f.call("seats", "cancel_scheduled_change", "acme")
    assert r.status_code == 404 and r.parsed.code.value == "no_scheduled_change"

    # invoices and events, as an admin
    r = f.call("ledger", "list_invoices", "acme", as_="bob")
    assert [inv.id for inv in r.parsed.data] == [purchase.invoice.id]
    assert r.parsed.next_cursor is None
    r = f.call("ledger", "get_invoice", "acme", purchase.invoice.id, as_="bob")
    assert r.parsed.lines[0].quantity == 25
    r = f.call("ledger", "get_invoice", "acme", "inv_nope", as_="bob")
    assert r.status_code == 404 and r.parsed.code.value == "invoice_not_found"
    r = f.call("ledger", "list_events", "acme", as_="bob", limit=100)
    types = [event.type_ for event in r.parsed.data]
    assert {"trial.started", "agent.assigned", "seats.purchased", "seats.removed"} <= set(types)

    # the test clock moves to the end of the period: the billing run renews
    f.clock(datetime(2026, 12, 1, 0, 5, tzinfo=NOW.tzinfo))
    report = f.billing_run()
    assert (report.renewals_invoiced, report.renewals_paid) == (1, 1)
    assert f.plan().current_period.start == date(2026, 12, 1)

    # the next renewal is declined: past due, purchases refused
    assert f.account("pm_decline_insufficient_funds") == 200
    f.clock(datetime(2027, 1, 1, 0, 5, tzinfo=NOW.tzinfo))
    report = f.billing_run()
    assert (report.renewals_invoiced, report.renewals_declined) == (1, 1)
    assert f.plan().status == m.PlanStatus.PAST_DUE
    body = m.PurchaseRequest(seats=30)
    r = f.call("seats", "purchase_seats", "acme", body=body, idempotency_key=str(uuid.uuid4()))
    assert r.status_code == 409 and r.parsed.code == m.PurchaseSeatsConflictProblemCode.PAST_DUE
    r = f.call("ledger", "list_invoices", "acme")
    unpaid = [inv for inv in r.parsed.data if inv.status != m.InvoiceStatus.PAID]
    assert [inv.kind for inv in unpaid] == [m.InvoiceKind.RENEWAL]
    outstanding = unpaid[0]
    assert outstanding.total == 10 * 1900

    # paying with the declining card is declined again, typed; a new card pays
    r = f.call("ledger", "pay_invoice", "acme", outstanding.id, idempotency_key=str(uuid.uuid4()))
    assert r.status_code == 402 and isinstance(r.parsed, m.PaymentDeclinedProblem)
    assert r.parsed.invoice_id == outstanding.id
    assert f.account("pm_card_visa") == 200
    r = f.call("ledger", "pay_invoice", "acme", outstanding.id, idempotency_key=str(uuid.uuid4()))
    assert r.status_code == 200, r.content
    assert r.parsed.status == m.InvoiceStatus.PAID and r.parsed.charge_id
    assert f.plan().status == m.PlanStatus.ACTIVE
    r = f.call("operations", "healthz", as_="service")
    assert r.parsed.status == "ok"
