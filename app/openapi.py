"""The OpenAPI document as a contract that generates good clients (SPEC §4).

FastAPI derives the document from the routes and schemas; this module is the one place that
names operations and schemas for callers and adds what FastAPI cannot see: from each route's
declaration (app/operations.py) its problem codes (typed from the error hierarchy,
app/openapi_errors.py), its Idempotency-Key and its security; response headers, links
between the operations a client chains, descriptions and request examples.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from app.errors import PROBLEM_JSON
from app.openapi_descriptions import PARAMETERS, PROPERTIES, RESPONSES
from app.openapi_errors import describe, problem_examples, problem_responses, problem_schema
from app.operations import Key, Operation, operation_of
from app.read_positions import COOKIE as READ_COOKIE
from app.read_positions import COOKIE_SECONDS as READ_COOKIE_SECONDS
from app.read_positions import HEADER as READ_POSITION
from app.read_positions import written_account

REF = "#/components/schemas/"
IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": r"^[\x21-\x7e]+$",
}

# Resource names where the class name says something else (SPEC §4: `Plan`, not
# `PlanSummary`); the rest follow `XOut` -> `X`, `XIn` -> `XRequest`, `Page[X]` -> `XPage`.
SCHEMA_NAMES = {
    "PlanSummary": "Plan",
    "AgentCheck": "AgentAccess",
    "RunReport": "BillingRunReport",
    "TestClockOut": "TestClock",
}

HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id (the caller's own when it sent a valid one): quote it "
        "to support; every log line of the request carries it.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the "
        "same Idempotency-Key and body: nothing was done again.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWW-Authenticate": {
        "description": "`Bearer`: send a token.",
        "schema": {"type": "string"},
    },
    READ_POSITION: {
        "description": "With standbys (SEATS_DATABASE_READ_URL) only: the primary's position "
        "after this write. Send it back as this header on a later read to see the write on any "
        "instance (the `seats_read_position` cookie does the same for a browser).",
        "schema": {"type": "string", "pattern": "^[0-9A-F]{1,8}/[0-9A-F]{1,8}$"},
    },
    "Set-Cookie": {
        "description": f"With standbys only: `{READ_COOKIE}=<position>` (HttpOnly, "
        f"SameSite=Strict, {READ_COOKIE_SECONDS} s), the `Seats-Read-Position` for a browser.",
        "schema": {"type": "string"},
    },
}

# Links between the operations a client chains (SPEC §4); parameters are runtime expressions.
ACCOUNT = {"account_id": "$request.path.account_id"}
LINKS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "upsertAccount": {
        "2XX": {
            "startTrial": {"parameters": {"account_id": "$response.body#/id"}},
            "upsertUser": {"parameters": {"account_id": "$response.body#/id"}},
            "getPlan": {"parameters": {"account_id": "$response.body#/id"}},
        }
    },
    "upsertUser": {
        "2XX": {
            "assignAgent": {
                "parameters": {
                    "account_id": "$response.body#/account_id",
                    "user_id": "$response.body#/id",
                }
            }
        }
    },
    "startTrial": {
        "201": {"assignAgent": {"parameters": ACCOUNT}, "createQuote": {"parameters": ACCOUNT}}
    },
    "assignAgent": {
        "2XX": {
            "checkAgent": {"parameters": {**ACCOUNT, "user_id": "$response.body#/user_id"}},
            "unassignAgent": {"parameters": {**ACCOUNT, "user_id": "$response.body#/user_id"}},
        }
    },
    "createQuote": {
        "201": {
            "purchaseSeats": {
                "parameters": ACCOUNT,
                "requestBody": {
                    "seats": "$response.body#/seats",
                    "quote_id": "$response.body#/id",
                },
            }
        }
    },
    "purchaseSeats": {
        "201": {
            "getInvoice": {"parameters": {**ACCOUNT, "invoice_id": "$response.body#/invoice/id"}},
        },
        "402": {
            "getInvoice": {"parameters": {**ACCOUNT, "invoice_id": "$response.body#/invoice_id"}},
            "payInvoice": {"parameters": {**ACCOUNT, "invoice_id": "$response.body#/invoice_id"}},
        },
    },
    "getInvoice": {
        "200": {"payInvoice": {"parameters": {**ACCOUNT, "invoice_id": "$response.body#/id"}}}
    },
    # R15: a summary (or a removal) showing a `scheduled_change` can cancel it.
    "getPlan": {"200": {"cancelScheduledChange": {"parameters": ACCOUNT}}},
    "removeSeats": {"200": {"cancelScheduledChange": {"parameters": ACCOUNT}}},
}


def operation_id(route: APIRoute) -> str:
    """A camelCase operationId from the handler's name (``purchase_seats``: ``purchaseSeats``)."""
    head, *rest = route.name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def resource_name(name: str) -> str:
    """The schema name a client sees: the resource, not the Python class."""
    if name in SCHEMA_NAMES:
        return SCHEMA_NAMES[name]
    if page := re.fullmatch(r"Page_(\w+)_", name):
        return f"{resource_name(page.group(1))}Page"
    if name.endswith("Out"):
        return name.removesuffix("Out")
    if name.endswith("In"):
        return name.removesuffix("In") + "Request"
    return name


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app``, built once."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = doc.setdefault("components", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.setdefault("schemas", {}).pop(unused, None)
    _rename_schemas(doc)
    schemas = components["schemas"]
    schemas["Problem"] = problem_schema()
    declared = declarations(app)
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A user's token (`sub`, `account_id`, `exp`) or a service's "
            "(`scope: seats:internal`); see How to authenticate.",
        }
    }
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            _operation(operation, declared[operation["operationId"]], schemas)
            if written_account(method.upper(), path):
                _read_position_headers(operation)
    _describe_properties(schemas)
    app.openapi_schema = doc
    return doc


def declarations(app: FastAPI) -> dict[str, Operation]:
    """Each documented operation's declaration, by operationId; ``Undeclared`` for a route
    that has none (app/operations.py)."""
    return {
        route.operation_id or route.unique_id: operation_of(route.endpoint)
        for route in iter_route_contexts(app.routes)  # the included routers' routes too
        if isinstance(route.original_route, APIRoute) and route.include_in_schema
    }


def _rename_schemas(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    renamed = {old: resource_name(old) for old in schemas}
    assert len(set(renamed.values())) == len(renamed), f"two schemas, one name: {renamed}"
    doc["components"]["schemas"] = {renamed[old]: schema for old, schema in schemas.items()}
    for new in renamed.values():
        doc["components"]["schemas"][new]["title"] = new

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF):
                node["$ref"] = REF + renamed.get(ref.removeprefix(REF), ref.removeprefix(REF))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)


def _operation(operation: dict[str, Any], declared: Operation, schemas: dict[str, Any]) -> None:
    op_id = operation["operationId"]
    if not declared.public:
        operation["security"] = [{"bearer": []}]
    keys = [p for p in operation.get("parameters", []) if p["name"] == "Idempotency-Key"]
    if bool(keys) != declared.idempotent:
        raise ValueError(
            f"{op_id} declares key={declared.key} but its handler "
            f"{'takes' if keys else 'does not take'} the Idempotency-Key dependency"
        )
    for parameter in operation.get("parameters", []):
        if parameter["name"] == "Idempotency-Key":
            # A plain string: "absent" is not a value a client passes (no `string | null`).
            parameter["schema"] = dict(IDEMPOTENCY_KEY_SCHEMA)
            parameter["required"] = declared.key is Key.REQUIRED
        _plain(parameter)
        if not parameter.get("description") and parameter["name"] in PARAMETERS:
            parameter["description"] = PARAMETERS[parameter["name"]]
    _request_example(operation, schemas)

    responses = operation["responses"]
    for status in [s for s in responses if s.isdigit() and int(s) >= 400]:
        del responses[status]  # FastAPI's own 422; the declared problems replace it
    errors = declared.errors
    for status, (name, schema) in problem_responses(op_id, errors).items():
        schemas[name] = schema
        responses[status] = {
            "description": describe(errors, int(status)),
            "content": {
                PROBLEM_JSON: {
                    "schema": {"$ref": REF + name},
                    "examples": problem_examples(errors, int(status)),
                }
            },
        }
    for status, response in responses.items():
        _response_headers(declared, status, response)
        if status in RESPONSES.get(op_id, {}):
            response["description"] = RESPONSES[op_id][status]
    for status, links in LINKS.get(op_id, {}).items():
        # "2XX": every success (an upsert answers 200 or 201)
        targets = [s for s in responses if s.startswith("2")] if status == "2XX" else [status]
        for target in targets:
            responses[target]["links"] = {
                f"{name[0].upper()}{name[1:]}": {"operationId": name, **link}
                for name, link in links.items()
            }
    operation["responses"] = dict(sorted(responses.items()))


def _plain(parameter: dict[str, Any]) -> None:
    """An optional parameter is left out, never sent as null: drop the ``null`` branch."""
    schema = parameter["schema"]
    branches = schema.get("anyOf", [])
    kept = [branch for branch in branches if branch.get("type") != "null"]
    if len(kept) == 1 and len(branches) == 2:
        parameter["schema"] = {**{k: v for k, v in schema.items() if k != "anyOf"}, **kept[0]}


def _response_headers(declared: Operation, status: str, response: dict[str, Any]) -> None:
    headers = response.setdefault("headers", {})
    headers["X-Request-ID"] = HEADERS["X-Request-ID"]
    if declared.idempotent and status not in ("500", "503"):
        # Final answers, errors included, are stored and replayed (SPEC §5).
        headers["Idempotent-Replayed"] = HEADERS["Idempotent-Replayed"]
    if status == "503":
        headers["Retry-After"] = HEADERS["Retry-After"]
    if status == "401":
        headers["WWW-Authenticate"] = HEADERS["WWW-Authenticate"]


def _read_position_headers(operation: dict[str, Any]) -> None:
    """A write for an account answers its read position, unless a 5xx (app/read_positions.py)."""
    for status, response in operation["responses"].items():
        if not status.startswith("5"):
            response["headers"][READ_POSITION] = HEADERS[READ_POSITION]
            response["headers"]["Set-Cookie"] = HEADERS["Set-Cookie"]


def _request_example(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """An example body for every request, made of its properties' own examples."""
    for media in operation.get("requestBody", {}).get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        schema = schemas.get(ref.removeprefix(REF), {})
        example = {
            name: prop["examples"][0]
            for name, prop in schema.get("properties", {}).items()
            if prop.get("examples")
        }
        if example and "example" not in media:
            media["example"] = example


def _describe_properties(schemas: dict[str, Any]) -> None:
    """A description on every property: its own, else the API's word for that name."""
    for schema_name, schema in schemas.items():
        for name, prop in schema.get("properties", {}).items():
            if prop.get("description"):
                continue
            # A missing one is left out, for tests/test_openapi.py to name.
            text = PROPERTIES.get(f"{schema_name}.{name}") or PROPERTIES.get(name)
            if text:
                prop["description"] = text
