"""The OpenAPI document is a contract that generates good clients (SPEC §4)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from app import errors as errors_module
from app.errors import AppError, error_classes
from app.main import create_app
from app.openapi_errors import OPERATION_ERRORS, PUBLIC_ERRORS
from tests.conftest import make_settings

Json = dict[str, Any]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def doc() -> Json:
    spec: Json = create_app(make_settings("sqlite+aiosqlite:///:memory:")).openapi()
    return spec


def operations(doc: Json) -> list[tuple[str, str, Json]]:
    return [
        (method, path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    ]


def by_id(doc: Json) -> dict[str, Json]:
    return {op["operationId"]: op for _, _, op in operations(doc)}


def resolve(doc: Json, node: Json) -> Json:
    while "$ref" in node:
        node = doc["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_operation_ids_are_short_camel_case_and_tagged(doc: Json) -> None:
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    for _, path, op in operations(doc):
        assert re.fullmatch(r"[a-z][a-zA-Z]{2,24}", op["operationId"]), (path, op["operationId"])
        assert len(op["tags"]) == 1, (path, op["tags"])
    for expected in ("purchaseSeats", "checkAgent", "upsertAccount", "startTrial", "payInvoice"):
        assert expected in ids


def test_every_operation_has_its_errors_declared(doc: Json) -> None:
    """A new operation must say which problems it answers (app/openapi_errors.py)."""
    assert set(by_id(doc)) == set(OPERATION_ERRORS) | set(PUBLIC_ERRORS)


def test_schema_names_are_resource_names(doc: Json) -> None:
    names = set(doc["components"]["schemas"])
    assert {"Plan", "Quote", "Invoice", "Agent", "Problem", "AgentPage", "Account"} <= names
    for name in names:
        assert not re.search(r"(Out|In|_)$|^Page_|Response|Healthz", name), name
    for name, schema in doc["components"]["schemas"].items():
        assert schema.get("title", name) == name
    for _, path, op in operations(doc):
        for status, response in op["responses"].items():
            for media in response.get("content", {}).values():
                assert "$ref" in media["schema"] or media["schema"].get("type") == "string", (
                    path,
                    status,
                )


def test_every_property_and_parameter_is_described(doc: Json) -> None:
    missing = [
        f"{name}.{prop}"
        for name, schema in doc["components"]["schemas"].items()
        for prop, spec in schema.get("properties", {}).items()
        if not spec.get("description")
    ]
    missing += [
        f"{op['operationId']}({param['name']})"
        for _, _, op in operations(doc)
        for param in op.get("parameters", [])
        if not param.get("description")
    ]
    assert missing == [], "describe them (app/openapi_descriptions.py or Field)"


def test_every_request_body_has_an_example(doc: Json) -> None:
    for _, path, op in operations(doc):
        for media in op.get("requestBody", {}).get("content", {}).values():
            assert media.get("example"), path
            schema = resolve(doc, media["schema"])
            assert set(schema.get("required", [])) <= set(media["example"]), path


def test_required_idempotency_key_is_a_plain_string(doc: Json) -> None:
    (key,) = [p for p in by_id(doc)["purchaseSeats"]["parameters"] if p["in"] == "header"]
    assert key["name"] == "Idempotency-Key"
    assert key["required"] is True
    assert key["schema"]["type"] == "string"
    assert "anyOf" not in key["schema"]
    for _, _, op in operations(doc):
        for param in op.get("parameters", []):
            assert "null" not in str(param["schema"]), (op["operationId"], param["name"])


def test_problem_codes_are_enums_per_operation_with_typed_extras(doc: Json) -> None:
    ops = by_id(doc)
    conflict = resolve(doc, ops["purchaseSeats"]["responses"]["409"]["content"]
                       ["application/problem+json"]["schema"])  # fmt: skip
    codes = set(conflict["properties"]["code"]["enum"])
    assert {"seats_assigned", "past_due", "quote_stale", "not_an_increase"} <= codes
    assert "no_empty_seat" not in codes  # an assignment's problem, not a purchase's
    assert conflict["properties"]["assigned"]["type"] == "integer"
    assert conflict["properties"]["current"]["type"] == "integer"
    declined = resolve(doc, ops["payInvoice"]["responses"]["402"]["content"]
                       ["application/problem+json"]["schema"])  # fmt: skip
    assert declined["properties"]["code"]["enum"] == ["payment_declined"]
    assert declined["properties"]["invoice_id"]["type"] == "string"
    invalid = resolve(doc, ops["listAgents"]["responses"]["422"]["content"]
                      ["application/problem+json"]["schema"])  # fmt: skip
    # optional and never null: present only on validation_error (no `default: null`)
    assert "errors" not in invalid["required"]
    assert invalid["properties"]["errors"]["type"] == "array"
    assert "default" not in invalid["properties"]["errors"]
    for name, schema in doc["components"]["schemas"].items():
        if name.endswith("Problem"):
            for prop in schema["properties"].values():
                assert "default" not in prop, name
    # statuses, titles and extras come from the hierarchy
    every_code = {cls.code for cls in error_classes()}
    for _, _, op in operations(doc):
        for status, response in op["responses"].items():
            if status[0] in "45":
                schema = resolve(doc, response["content"]["application/problem+json"]["schema"])
                assert set(schema["properties"]["code"]["enum"]) <= every_code
                for code in schema["properties"]["code"]["enum"]:
                    assert f"`{code}`" in response["description"]
                    assert next(c for c in error_classes() if c.code == code).status == int(status)


def test_every_response_body_has_a_schema_the_billing_report_included(doc: Json) -> None:
    run = by_id(doc)["runBilling"]["responses"]["200"]["content"]["application/json"]["schema"]
    report = resolve(doc, run)
    assert report["title"] == "BillingRunReport"
    assert {"renewals_invoiced", "renewals_declined", "errors"} <= set(report["properties"])
    health = by_id(doc)["healthz"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert resolve(doc, health)["properties"]["status"]


def test_response_headers_are_declared_where_they_are_sent(doc: Json) -> None:
    for _, path, op in operations(doc):
        for status, response in op["responses"].items():
            headers = response["headers"]
            assert headers["X-Request-ID"]["required"] is True, (path, status)
            if status == "503":
                assert "Retry-After" in headers
    purchase = by_id(doc)["purchaseSeats"]["responses"]
    assert "Idempotent-Replayed" in purchase["201"]["headers"]
    assert "Idempotent-Replayed" in purchase["409"]["headers"]  # final errors replay too


def test_links_chain_the_operations_a_client_follows(doc: Json) -> None:
    ops = by_id(doc)

    def targets(op_id: str) -> set[str]:
        return {
            link["operationId"]
            for response in ops[op_id]["responses"].values()
            for link in response.get("links", {}).values()
        }

    assert "startTrial" in targets("upsertAccount")
    assert "assignAgent" in targets("startTrial")
    assert "getInvoice" in targets("purchaseSeats")
    assert "payInvoice" in targets("getInvoice")
    for op_id, op in ops.items():
        for response in op["responses"].values():
            for link in response.get("links", {}).values():
                target = ops[link["operationId"]]
                names = {p["name"] for p in target.get("parameters", [])}
                assert set(link.get("parameters", {})) <= names, (op_id, link)


def test_info_says_how_to_authenticate(doc: Json) -> None:
    assert doc["info"]["title"] == "Conversations seats"
    assert "## How to authenticate" in doc["info"]["description"]
    assert doc["components"]["securitySchemes"]["bearer"]["bearerFormat"] == "JWT"


def _raised_extras() -> list[tuple[str, str, set[str]]]:
    """Every ``SomeError(..., key=value)`` in app/: (where, class name, keyword names)."""
    classes = {cls.__name__ for cls in error_classes()} | {
        name for name, value in vars(errors_module).items()
        if isinstance(value, type) and issubclass(value, AppError)
    }  # fmt: skip
    found = []
    for source in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in classes
                and node.keywords
            ):
                keywords = {kw.arg for kw in node.keywords if kw.arg}
                found.append((f"{source.name}:{node.lineno}", node.func.id, keywords))
    return found


def test_every_extra_member_of_a_problem_is_declared_on_its_class() -> None:
    raised = _raised_extras()
    assert raised, "the scan found no problem with extra members"
    for where, name, keywords in raised:
        cls = getattr(errors_module, name)
        assert keywords <= set(cls.fields), f"{where}: declare {keywords} in {name}.fields"
