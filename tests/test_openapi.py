"""The OpenAPI document is a contract that generates good clients (SPEC §4)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from app import errors as errors_module
from app.errors import AppError, error_classes
from app.main import create_app
from app.operations import Key, Undeclared, declare, operation_of
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


def declared_routes() -> dict[str, Any]:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))
    return {
        route.operation_id or route.unique_id: route
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute) and route.include_in_schema
    }


def test_every_operation_declares_its_problems_at_its_route(doc: Json) -> None:
    """A new operation says which problems it answers, at its route (app/operations.py), and
    the document's codes are exactly those."""
    routes = declared_routes()
    assert set(routes) == set(by_id(doc))
    for op_id, route in routes.items():
        declared = {cls.code for cls in operation_of(route.endpoint).errors}
        documented = {
            code
            for status, response in by_id(doc)[op_id]["responses"].items()
            if status[0] in "45"
            for code in resolve(doc, response["content"]["application/problem+json"]["schema"])[
                "properties"
            ]["code"]["enum"]
        }
        assert documented == declared, op_id


def test_an_undeclared_route_fails_the_document() -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))

    @app.get("/v1/accounts/{account_id}/conversations/undeclared")
    async def undeclared(account_id: str) -> dict[str, str]:
        return {}

    with pytest.raises(Undeclared, match="undeclared"):
        app.openapi()


def test_a_declared_key_the_handler_does_not_take_fails_the_document() -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))

    @app.post("/v1/accounts/{account_id}/conversations/keyless")
    @declare(key=Key.OPTIONAL)
    async def keyless(account_id: str) -> dict[str, str]:
        return {}

    with pytest.raises(ValueError, match=r"keyless declares key=Key\.OPTIONAL"):
        app.openapi()


def test_the_idempotency_key_documented_is_the_one_declared(doc: Json) -> None:
    routes = declared_routes()
    for op_id, op in by_id(doc).items():
        key = operation_of(routes[op_id].endpoint).key
        params = [p for p in op.get("parameters", []) if p["name"] == "Idempotency-Key"]
        assert bool(params) == (key is not Key.NONE), op_id
        if params:
            assert params[0]["required"] is (key is Key.REQUIRED), op_id
        for status, response in op["responses"].items():
            if status not in ("500", "503"):  # final answers are replayed (SPEC §5)
                replayed = "Idempotent-Replayed" in response["headers"]
                assert replayed == (key is not Key.NONE), (op_id, status)
    assert operation_of(routes["purchaseSeats"].endpoint).key is Key.REQUIRED


def test_each_problem_example_is_its_own_code(doc: Json) -> None:
    """`/docs` shows each code's own `type` and `code`, never another problem's."""
    for _, path, op in operations(doc):
        for status, response in op["responses"].items():
            if status[0] not in "45":
                continue
            media = response["content"]["application/problem+json"]
            schema = resolve(doc, media["schema"])
            codes = schema["properties"]["code"]["enum"]
            examples = media.get("examples", {})
            assert sorted(examples) == sorted(codes), (path, status)
            for code, example in examples.items():
                value = example["value"]
                assert value["code"] == code, (path, status)
                assert value["type"] == f"https://seats.conversations/problems/{code}"
                assert value["status"] == int(status)
                assert set(schema["required"]) <= set(value), (path, status, code)
            for member in ("type", "code"):
                for shown in schema["properties"][member].get("examples", []):
                    assert shown.rsplit("/", 1)[-1] in codes, (path, status, shown)


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


def test_the_read_position_is_declared_where_it_is_sent(doc: Json) -> None:
    """With standbys, every write for an account that is not a 5xx answers its position, as a
    header and a cookie (app/read_positions.py)."""
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            sent = method != "get" and "/accounts/{account_id}" in path and int(status) < 500
            assert ("Seats-Read-Position" in response["headers"]) is sent, (path, status)
            assert ("Set-Cookie" in response["headers"]) is sent, (path, status)
    assert "Seats-Read-Position" in by_id(doc)["purchaseSeats"]["responses"]["402"]["headers"]
    assert "Seats-Read-Position" not in by_id(doc)["getPlan"]["responses"]["200"]["headers"]


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
