"""The problems an operation may answer, as OpenAPI responses built from the error hierarchy.

Each route declares the ``AppError`` classes its handler, services and dependencies may raise
(app/operations.py); ``problem_responses`` turns them into one problem schema per status,
whose ``code`` is an enum of exactly those codes and whose extra members are typed from each
class's ``fields``, with one example per code. Nothing about a code is written twice: status,
title and extras come from app/errors.py.
"""

from __future__ import annotations

from collections import defaultdict
from http import HTTPStatus
from typing import Any

from app.errors import AppError
from app.operations import Errors

_BASE_PROPERTIES: dict[str, Any] = {
    "type": {
        "type": "string",
        "description": "A URI naming the problem: `https://seats.conversations/problems/<code>`.",
    },
    "title": {"type": "string", "description": "The problem in a few words; fixed per code."},
    "status": {"type": "integer", "description": "The HTTP status, repeated."},
    "detail": {"type": "string", "description": "This occurrence of the problem, in words."},
    "code": {
        "type": "string",
        "description": "The stable machine-readable code: branch on this, never on the text.",
    },
    "request_id": {
        "type": ["string", "null"],
        "description": "The request's `X-Request-ID`, for a support ticket.",
    },
}
PROBLEM_TYPE = "https://seats.conversations/problems/"
_REQUIRED = ["type", "title", "status", "detail", "code", "request_id"]


def problem_schema() -> dict[str, Any]:
    """The base ``Problem``: any code (SPEC §4), as the service answers it."""
    return {
        "title": "Problem",
        "type": "object",
        "description": "RFC 9457 problem details with the service's stable `code`. Problems "
        "of some codes carry more members, typed in each operation's responses.",
        "properties": _BASE_PROPERTIES,
        "required": _REQUIRED,
    }


def problem_type(code: str) -> str:
    """The problem's ``type`` URI, as app/problems.py answers it."""
    return f"{PROBLEM_TYPE}{code}"


def _camel(text: str) -> str:
    return "".join(word.capitalize() for word in text.replace("-", "_").split("_"))


def problem_schema_of(errors: Errors) -> dict[str, Any]:
    """One status's problems: ``code`` is an enum of these codes; their extras are typed."""
    codes = sorted({cls.code for cls in errors})
    properties = dict(_BASE_PROPERTIES)
    properties["code"] = {
        "type": "string",
        "enum": codes,
        "description": _BASE_PROPERTIES["code"]["description"],
    }
    carried: dict[str, list[str]] = defaultdict(list)
    schemas: dict[str, dict[str, Any]] = {}
    for cls in sorted(errors, key=lambda cls: cls.code):
        for name, schema in cls.fields.items():
            carried[name].append(cls.code)
            schemas.setdefault(name, schema)
    for name, schema in schemas.items():
        which = ", ".join(f"`{code}`" for code in carried[name])
        properties[name] = {**schema, "description": f"{schema['description']} Sent with {which}."}
    return {"type": "object", "properties": properties, "required": _REQUIRED}


def problem_responses(operation_id: str, errors: Errors) -> dict[str, tuple[str, dict[str, Any]]]:
    """Per status: (component name, schema) of the problems an operation may answer."""
    by_status: dict[int, list[type[AppError]]] = defaultdict(list)
    for cls in errors:
        if cls not in by_status[cls.status]:
            by_status[cls.status].append(cls)
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for status, classes in sorted(by_status.items()):
        if len({cls.code for cls in classes}) == 1:
            # One code: one schema shared by every operation that answers it.
            name = f"{_camel(classes[0].code)}Problem"
        else:
            phrase = _camel(HTTPStatus(status).phrase.replace(" ", "_"))
            name = f"{operation_id[0].upper()}{operation_id[1:]}{phrase}Problem"
        out[str(status)] = (name, {"title": name, **problem_schema_of(tuple(classes))})
    return out


def describe(errors: Errors, status: int) -> str:
    """A response description that lists its codes and their titles."""
    lines = [f"`{cls.code}`: {cls.title}." for cls in errors if cls.status == status]
    return " ".join(sorted(set(lines)))


def problem_examples(errors: Errors, status: int) -> dict[str, dict[str, Any]]:
    """One example per code of ``status``, named by its code: its own ``type`` and ``code``."""
    return {
        cls.code: {
            "summary": cls.title,
            "value": {
                "type": problem_type(cls.code),
                "title": cls.title,
                "status": cls.status,
                "detail": f"{cls.title}.",
                "code": cls.code,
                "request_id": "3b2f7c0e9a4d4f51",
            },
        }
        for cls in sorted(set(errors), key=lambda cls: cls.code)
        if cls.status == status
    }
