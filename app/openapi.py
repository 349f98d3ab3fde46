"""The OpenAPI document as a contract that generates good clients (SPEC §4).

FastAPI derives the document from the routes and schemas; this module is the one place that
names operations and schemas for callers, and declares what FastAPI cannot see: the problem
codes of each operation (from the error hierarchy), headers, links and examples.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from app.errors import Problem


def operation_id(route: APIRoute) -> str:
    """A camelCase operationId from the handler's name (``purchase_seats``: ``purchaseSeats``)."""
    head, *rest = route.name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with every error declared as problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    problem_ref = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if path not in ("/healthz", "/readyz", "/metrics"):
                operation["security"] = [{"bearer": []}]
            if path.endswith("/purchases"):
                # Optional in the shared dependency, required here (400 without it).
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "Idempotency-Key":
                        parameter["required"] = True
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {"application/problem+json": problem_ref}
    app.openapi_schema = schema
    return schema
