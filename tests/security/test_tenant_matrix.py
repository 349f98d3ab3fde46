"""Tenant isolation: every endpoint x every kind of caller x own / other / unknown account.

The expected answer of each cell comes from ``expected()``, which is SPEC §4 written as code, in
the order the service applies it:

1. no token                                     -> 401 unauthenticated
2. a user token on an /internal endpoint        -> 403 service_token_required
3. a user token on another account's path       -> 404 not_found (whether it exists or not)
4. a service on an account that does not exist  -> 404 not_found (PUT account creates it: 201)
5. a caller whose role may not do this          -> 403 not_primary_admin / not_admin
6. a path naming another account's resource     -> 404 with the resource's own code
7. otherwise                                    -> the endpoint's success status

Each (endpoint, caller) test runs on a freshly seeded database in which the success is real
(acme and globex have paid plans, acme has an invoice, a user to assign and an agent to
unassign), then tries the three accounts. Every refused request is proven to change no row of
any table; every success is proven to change no row of any other account, and every successful
write to change something (so the "nothing changed" check is not vacuous).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import NOW, Api, auth, problem, seed_directory, service_token, user_token
from tests.security.conftest import SnapshotFn, World, changed_tables, rows_not_of

ACME, GLOBEX, UNKNOWN = "acme", "globex", "nope"

# Roles, as the directory names them (a service token and no token have none).
PRIMARY, ADMIN, USER = "primary_admin", "admin", "user"


@dataclass(frozen=True)
class Caller:
    name: str
    account: str | None  # the token's account_id (None for a service or no token)
    role: str | None  # the directory's role (None for a service or no token)
    token: bool = True

    @property
    def is_service(self) -> bool:
        return self.token and self.account is None

    def headers(self) -> dict[str, str]:
        if not self.token:
            return {}
        if self.account is None:
            return auth(service_token())
        return auth(user_token(self.account, self.name))


CALLERS = [
    Caller("alice", ACME, PRIMARY),
    Caller("bob", ACME, ADMIN),
    Caller("carol", ACME, USER),
    Caller("service", None, None),
    Caller("gina", GLOBEX, PRIMARY),
    Caller("nobody", None, None, token=False),
]

# Who may call an endpoint (SPEC §4's "who" column).
ANYONE = "any user of the account, services"
STAFF = "admins, primary admin, services"
ADMINS = "admins, primary admin"
PRIMARY_ONLY = "primary admin"
SERVICES = "services only (/internal)"

ACCOUNTS = (ACME, GLOBEX, UNKNOWN)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {account} and {invoice} are filled in; user ids are acme's users
    who: str
    ok: int
    state: str = "active"  # which seeded world makes the success real (see ``seed``)
    body: Any = None
    key: bool = False  # send an Idempotency-Key (all the idempotent POSTs but pay, see below)
    foreign: str | None = None  # the 404 code when the path names acme's resource elsewhere
    creates_account: bool = False
    accounts: tuple[str | None, ...] = ACCOUNTS
    changes: bool = True  # a success changes a row (checked, to keep the refusals honest)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path.replace('/v1/accounts/{account}/conversations', '')}"


V1 = "/v1/accounts/{account}/conversations"
ACCOUNT_BODY = {
    "name": "Renamed Inc.",
    "billing_cycle": "monthly",
    "billing_anchor": "2026-11-01",
    "payment_method": "pm_card_visa",
}
USER_BODY = {"email": "zoe@example.test", "name": "Zoë", "role": "user"}

ENDPOINTS = [
    Endpoint("GET", V1, ANYONE, 200, changes=False),
    Endpoint("POST", V1 + "/trial", PRIMARY_ONLY, 201, state="fresh", key=True),
    Endpoint("GET", V1 + "/quote-preview?seats=10", STAFF, 200, changes=False),
    Endpoint("POST", V1 + "/quotes", ADMINS, 201, body={"seats": 10}, key=True),
    Endpoint("POST", V1 + "/purchases", PRIMARY_ONLY, 201, body={"seats": 10}, key=True),
    Endpoint("POST", V1 + "/removals", PRIMARY_ONLY, 200, body={"seats": 4}, key=True),
    Endpoint("GET", V1 + "/agents", ANYONE, 200, changes=False),
    Endpoint("GET", V1 + "/users", STAFF, 200, changes=False),
    Endpoint("GET", V1 + "/agents/dave", ANYONE, 200, foreign="user_not_found", changes=False),
    Endpoint("PUT", V1 + "/agents/dave", ADMINS, 201, foreign="user_not_found"),
    Endpoint("DELETE", V1 + "/agents/erin", ADMINS, 204, foreign="not_an_agent"),
    Endpoint("GET", V1 + "/invoices", STAFF, 200, changes=False),
    Endpoint(
        "GET", V1 + "/invoices/{invoice}", STAFF, 200, foreign="invoice_not_found", changes=False
    ),
    # No Idempotency-Key here: a stored 404 invoice_not_found (a final outcome, SPEC §5) would
    # be a written row, and this matrix proves refusals write nothing.
    Endpoint(
        "POST",
        V1 + "/invoices/{invoice}/pay",
        PRIMARY_ONLY,
        200,
        state="past_due",
        foreign="invoice_not_found",
    ),
    Endpoint("GET", V1 + "/events", STAFF, 200, changes=False),
    Endpoint(
        "PUT", "/internal/v1/accounts/{account}", SERVICES, 200, body=ACCOUNT_BODY,
        creates_account=True,
    ),
    Endpoint("PUT", "/internal/v1/accounts/{account}/users/zoe", SERVICES, 201, body=USER_BODY),
    Endpoint(
        "DELETE", "/internal/v1/accounts/{account}/users/dave", SERVICES, 204,
        foreign="user_not_found",
    ),
    # Nothing is due at the seeded time: the run answers its (empty) report.
    Endpoint("POST", "/internal/v1/billing/run", SERVICES, 200, accounts=(None,), changes=False),
    Endpoint(
        "PUT",
        "/internal/v1/test-clock",
        SERVICES,
        200,
        body={"now": (NOW + timedelta(hours=1)).isoformat()},
        accounts=(None,),
    ),
]  # fmt: skip


def allowed(who: str, caller: Caller) -> bool:
    """Rule 5: may this caller (a user of the path's account, or a service) do this?"""
    if who == ANYONE:
        return True
    if who == STAFF:
        return caller.is_service or caller.role in (ADMIN, PRIMARY)
    if who == ADMINS:
        return caller.role in (ADMIN, PRIMARY)
    if who == PRIMARY_ONLY:
        return caller.role == PRIMARY
    raise AssertionError(who)


def expected(ep: Endpoint, caller: Caller, account: str | None) -> tuple[int, str | None]:
    """SPEC §4's answer for this cell: (status, problem code or None for a success)."""
    if not caller.token:
        return 401, "unauthenticated"
    if ep.who == SERVICES and not caller.is_service:
        return 403, "service_token_required"
    if not caller.is_service and caller.account != account:
        return 404, "not_found"
    if account == UNKNOWN:
        return (201, None) if ep.creates_account else (404, "not_found")
    if ep.who != SERVICES and not allowed(ep.who, caller):
        return 403, "not_primary_admin" if ep.who == PRIMARY_ONLY else "not_admin"
    if ep.foreign and account != ACME:
        return 404, ep.foreign
    return ep.ok, None


def test_the_rule_function_says_what_the_spec_says() -> None:
    """A few cells spelled out by hand, straight from SPEC §4 and the brief's decisions."""
    alice, bob, carol, service, gina, nobody = CALLERS
    by_label = {ep.label: ep for ep in ENDPOINTS}
    cells = [
        (by_label["GET "], nobody, ACME, (401, "unauthenticated")),
        (by_label["GET "], gina, ACME, (404, "not_found")),
        (by_label["GET "], alice, UNKNOWN, (404, "not_found")),
        (by_label["GET "], service, UNKNOWN, (404, "not_found")),
        (by_label["GET "], service, GLOBEX, (200, None)),
        (by_label["POST /purchases"], bob, ACME, (403, "not_primary_admin")),
        (by_label["POST /purchases"], service, ACME, (403, "not_primary_admin")),
        (by_label["POST /purchases"], gina, GLOBEX, (201, None)),
        (by_label["PUT /agents/dave"], carol, ACME, (403, "not_admin")),
        (by_label["PUT /agents/dave"], service, ACME, (403, "not_admin")),
        (by_label["PUT /agents/dave"], gina, GLOBEX, (404, "user_not_found")),
        (by_label["GET /invoices"], carol, ACME, (403, "not_admin")),
        (by_label["GET /invoices/{invoice}"], service, GLOBEX, (404, "invoice_not_found")),
        (by_label["POST /internal/v1/billing/run"], alice, None, (403, "service_token_required")),
        (by_label["PUT /internal/v1/accounts/{account}"], service, UNKNOWN, (201, None)),
        (by_label["DELETE /internal/v1/accounts/{account}/users/dave"], service, UNKNOWN,
         (404, "not_found")),
    ]  # fmt: skip
    for ep, caller, account, answer in cells:
        assert expected(ep, caller, account) == answer, (ep.label, caller.name, account)


# One test per (endpoint, caller); it runs the caller against each account on one seeded
# database. That is sound: a refusal is proven to change nothing, and the one success a caller
# can have per account only touches that account (which no later cell of the test reads).
MATRIX = [
    pytest.param(ep, caller, id=f"{ep.label} | {caller.name}")
    for ep in ENDPOINTS
    for caller in CALLERS
]


async def seed(api: Api, state: str) -> dict[str, str]:
    """The world a cell runs in; returns the ids its path may name.

    Always: the ``api`` fixture's directory (clock at NOW; acme: alice, bob, carol; globex:
    gina), plus dave (a user, not an agent) and erin (a user) in acme.
    ``fresh``: no plan anywhere (so that a trial can start).
    ``active``: acme and globex bought 5 seats; erin is acme's agent; acme has a paid invoice.
    ``past_due``: acme bought 5 seats and its December renewal was declined (a pending
    invoice to pay; the payment method works again); the clock is on 1 December.
    """
    await seed_directory(api)
    for user_id in ("dave", "erin"):
        assert (await api.put_user(ACME, user_id)).status_code == 201
    ids: dict[str, str] = {}
    if state == "fresh":
        return ids
    r = await api.buy(5)
    assert r.status_code == 201, r.text
    ids["invoice"] = r.json()["invoice"]["id"]
    if state == "active":
        assert (await api.buy(5, GLOBEX, user="gina")).status_code == 201
        assert (await api.assign("erin")).status_code == 201
        return ids
    assert state == "past_due", state
    assert (await api.put_account(ACME, payment_method="pm_decline_x")).status_code == 200
    await api.set_clock(NOW.replace(month=12, day=1))
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.status_code == 200 and r.json()["renewals_declined"] == 1, r.text
    assert (await api.put_account(ACME, payment_method="pm_card_visa")).status_code == 200
    renewals = (await api.call("GET", ACME, "/invoices")).json()["data"]
    ids["invoice"] = next(i["id"] for i in renewals if i["kind"] == "renewal")
    assert (await api.summary())["status"] == "past_due"
    return ids


@pytest.mark.parametrize(("ep", "caller"), MATRIX)
async def test_tenant_matrix(
    world_of: World, snapshot: SnapshotFn, ep: Endpoint, caller: Caller
) -> None:
    api, ids = await world_of(ep.state, lambda api: seed(api, ep.state))
    for account in ep.accounts:
        cell = f"{ep.method} {ep.path} as {caller.name} on {account or '-'}"
        path = ep.path.format(account=account, invoice=ids.get("invoice", "inv_none"))
        headers = caller.headers()
        if ep.key:
            headers["Idempotency-Key"] = f"matrix-{caller.name}"
        status, code = expected(ep, caller, account)

        before = await snapshot()
        r = await api.client.request(ep.method, path, json=ep.body, headers=headers)
        after = await snapshot()

        if code is None:
            assert r.status_code == status, (cell, r.text)
            if account is not None:
                assert rows_not_of(before, account) == rows_not_of(after, account), (
                    cell,
                    "a success changed another account's rows",
                )
            if ep.changes:
                assert changed_tables(before, after), (cell, "a successful write changed nothing")
        else:
            try:
                problem(r, status, code)
            except AssertionError as exc:
                raise AssertionError(f"{cell}: {exc}") from exc
            assert changed_tables(before, after) == [], (cell, "a refused request changed rows")
            assert before == after, cell
