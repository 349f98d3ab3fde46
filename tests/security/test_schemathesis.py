"""Schemathesis against the service's own OpenAPI document, in process, on both databases.

Every operation gets schema-driven cases (the examples, coverage and fuzzing phases; valid and
invalid data), sent through ASGI to an app on a seeded database, as a caller who may use it:
acme's primary admin on /v1, a service on /internal. Each answer must be no server error, a
documented status with the documented content type (problem+json for errors), and a body and
headers that validate against the declared schemas: each error's `code` must be one of the
operation's enum. Some 422s are on purpose and documented as such: a cursor this service did
not issue (`validation_error`) and an Idempotency-Key reused with another body
(`idempotency_key_reused`). The stateful test follows the document's links and prints them.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi as schemathesis_asgi

from app.main import create_app
from tests.conftest import (
    NOW,
    PG_URL,
    auth,
    clean_postgres,
    make_settings,
    service_token,
    user_token,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

CONFIG_DICT: dict[str, Any] = {
    "generation": {
        "mode": "all",  # valid data, and data the schema says is invalid
        "max-examples": 25,
        "deterministic": True,  # the same cases on every run: a failure reproduces
        "no-shrink": True,  # a failure is reported as found, without minutes of shrinking
        "database": "none",
        # the Authorization header comes from the test (a token of a caller who may call)
        "with-security-parameters": False,
    },
    "phases": {"stateful": {"enabled": False}},
    "operations": [
        # /v1 acts on acme, so that cases reach the handlers instead of 404 not_found;
        # hostile account ids are tests/security/test_hostile_input.py's business.
        {"include-path-regex": "^/v1/", "parameters": {"path.account_id": "acme"}},
    ],
}
CONFIG = SchemathesisConfig.from_dict(CONFIG_DICT)

# The document only: this app never touches its database.
DOCUMENT = create_app(make_settings("sqlite+aiosqlite:///:memory:")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def st_client(migrated_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A seeded app behind Schemathesis' in-process ASGI client (one per module).

    The client runs the app on Schemathesis' own event-loop thread: the app's database
    connections are opened on that loop, and its lifespan closes them there at the end.
    """
    if PG_URL:
        asyncio.run(clean_postgres(PG_URL))
        url = PG_URL
    else:
        path = tmp_path_factory.mktemp("schemathesis") / "seats.db"
        shutil.copyfile(migrated_template, path)
        url = f"sqlite+aiosqlite:///{Path(path)}"
    app = create_app(make_settings(url))
    try:
        with schemathesis_asgi.get_client(app) as session:
            seed(session)
            yield session
    finally:
        # stops the app's lifespan: it closes the database pool on the loop that opened it
        schemathesis_asgi.shutdown_lifespans()


def seed(session: Any) -> None:
    """acme (monthly) with an active plan, agents and invoices; globex with a trial."""
    service = auth(service_token())
    alice = auth(user_token("acme", "alice"))

    def ok(response: Any) -> None:
        assert response.status_code < 300, response.text

    ok(session.put("/internal/v1/test-clock", json={"now": NOW.isoformat()}, headers=service))
    for account, cycle, anchor in (
        ("acme", "monthly", "2026-11-01"),
        ("globex", "yearly", "2026-03-15"),
    ):
        body = {
            "name": account.title(),
            "billing_cycle": cycle,
            "billing_anchor": anchor,
            "payment_method": "pm_card_visa",
        }
        ok(session.put(f"/internal/v1/accounts/{account}", json=body, headers=service))
    for account, user, role in (
        ("acme", "alice", "primary_admin"),
        ("acme", "bob", "admin"),
        ("acme", "carol", "user"),
        ("acme", "dave", "user"),
        ("globex", "gina", "primary_admin"),
    ):
        body = {"email": f"{user}@{account}.test", "name": user.title(), "role": role}
        ok(session.put(f"/internal/v1/accounts/{account}/users/{user}", json=body, headers=service))
    v1 = "/v1/accounts/acme/conversations"
    for seats in (5, 8):
        key = {"Idempotency-Key": uuid.uuid4().hex}
        ok(session.post(f"{v1}/purchases", json={"seats": seats}, headers={**alice, **key}))
    for user in ("bob", "carol"):
        ok(session.put(f"{v1}/agents/{user}", headers=alice))
    gina = auth(user_token("globex", "gina"))
    ok(session.post("/v1/accounts/globex/conversations/trial", headers=gina))


def caller_for(path: str) -> dict[str, str]:
    """A caller who may use ``path``: a service on /internal, acme's primary admin elsewhere."""
    if path.startswith("/internal/"):
        return auth(service_token())
    return auth(user_token("acme", "alice"))


@schema.parametrize()
def test_the_service_conforms_to_its_openapi(case: Any, st_client: Any) -> None:
    case.call_and_validate(session=st_client, headers=caller_for(case.path), checks=CHECKS)
    if case.path == "/internal/v1/test-clock":
        # keep the other operations' cases at the seeded time
        st_client.put(
            "/internal/v1/test-clock", json={"now": NOW.isoformat()}, headers=caller_for(case.path)
        )


# --- stateful: the OpenAPI links -------------------------------------------------------------

FOLLOWED: set[str] = set()


def test_the_linked_operations_chain_and_conform(st_client: Any, capsys: Any) -> None:
    """Schemathesis follows the document's links (upsertAccount -> startTrial -> assignAgent,
    purchaseSeats -> getInvoice -> payInvoice, ...), feeding each answer into the next call."""

    config = SchemathesisConfig.from_dict(
        {**CONFIG_DICT, "phases": {"stateful": {"enabled": True, "max-steps": 6}}}
    )
    linked = schemathesis.openapi.from_dict(DOCUMENT, config=config)
    operations: dict[str, str] = {}  # case id -> operationId, to name a link's source

    class Workflow(linked.as_state_machine()):  # type: ignore[misc]
        def step(self, input: Any) -> Any:
            op = input.case.operation.definition.raw["operationId"]
            operations[input.case.id] = op
            if input.transition is not None and input.applied_parameters:
                FOLLOWED.add(f"{operations.get(input.transition.parent_id, '?')} -> {op}")
            return super().step(input)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"session": st_client, "headers": caller_for(case.path)}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=60,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    with capsys.disabled():
        print(f"\nlinks followed ({len(FOLLOWED)}):", *sorted(FOLLOWED), sep="\n  ")
    # which links get a 2xx to follow depends on what the earlier cases left in the database
    assert FOLLOWED, "no link was followed"
