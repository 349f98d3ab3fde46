"""What each operation declares at its route: the problems it may answer and whether it takes an
``Idempotency-Key`` (SPEC §4, §5). Declared once, beside the route; nowhere else.

    @router.post("/purchases", status_code=201, response_model=PurchaseOut)
    @declare(*USER, NotPrimaryAdmin, PaymentDeclined, ..., key=Key.REQUIRED)
    async def purchase_seats(...): ...

``declare`` marks the handler itself, so it works above or below the router's decorator and
with ``router.add_api_route``. Two readers use the mark:

* the OpenAPI document (app/openapi.py): each status's problem schema, whose ``code`` is an
  enum of exactly the declared codes (and those every operation may answer, ``EVERY``), the
  ``Idempotency-Key`` parameter (required or not), the ``Idempotent-Replayed`` header, and the
  bearer security of all but ``public`` operations. An operation without a declaration, or
  whose declared key does not match its ``Idempotency-Key`` dependency, fails the document's
  build (tests/test_openapi.py), rather than documenting nothing;
* the request's ``Idempotency-Key`` dependency (app/deps.py): a missing key is ``400
  idempotency_key_required`` exactly where ``key=Key.REQUIRED`` is declared.

Porting an entry of the former ``OPERATION_ERRORS`` table (app/openapi_errors.py) to its
route: give the route's handler ``@declare(...)`` with the entry's classes, less ``*KEYED`` and
``IdempotencyKeyRequired``, which ``key=Key.OPTIONAL`` / ``key=Key.REQUIRED`` now add; drop the
route's ``responses=problems(...)``. A new endpoint touches its router (and schemas) only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from app.errors import (
    AppError,
    IdempotencyKeyInUse,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    InternalError,
    InvalidIdempotencyKey,
    NotFound,
    PayloadTooLarge,
    ServiceTokenRequired,
    ServiceUnavailable,
    Unauthenticated,
    UnknownUser,
    ValidationFailed,
)

Errors = tuple[type[AppError], ...]

# What any authenticated operation may answer: a bad token, an unknown or foreign account,
# a body over the limit, a bad parameter or body, a bug, the database away.
EVERY: Errors = (
    Unauthenticated,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
    InternalError,
    ServiceUnavailable,
)
# What an unauthenticated operation may answer whatever it does: a bug.
PUBLIC: Errors = (InternalError,)
# A user under /v1 must be in the directory.
USER: Errors = (UnknownUser,)
# The platform's endpoints refuse user tokens.
INTERNAL: Errors = (ServiceTokenRequired,)
# What an operation taking an Idempotency-Key may answer about it (SPEC §5).
KEYED: Errors = (InvalidIdempotencyKey, IdempotencyKeyInUse, IdempotencyKeyReused)


class Key(Enum):
    """Whether an operation takes an ``Idempotency-Key`` header."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation's declaration, as ``declare`` made it."""

    declared: Errors
    key: Key = Key.NONE
    public: bool = False

    @property
    def errors(self) -> Errors:
        """Every problem the operation may answer: the declared ones, those of its kind, and
        those of its key. Each once, in that order."""
        base = PUBLIC if self.public else EVERY
        keyed = () if self.key is Key.NONE else KEYED
        required = (IdempotencyKeyRequired,) if self.key is Key.REQUIRED else ()
        return tuple(dict.fromkeys((*base, *self.declared, *keyed, *required)))

    @property
    def idempotent(self) -> bool:
        """Whether final answers are stored and replayed for a repeated key."""
        return self.key is not Key.NONE


_ATTRIBUTE = "__seats_operation__"
Handler = TypeVar("Handler", bound=Callable[..., Any])


class Undeclared(LookupError):
    """A route whose handler has no ``@declare(...)``."""


def declare(
    *errors: type[AppError], key: Key = Key.NONE, public: bool = False
) -> Callable[[Handler], Handler]:
    """Mark a route's handler with the problems it may answer besides ``EVERY`` (its services'
    and dependencies' too) and its ``Idempotency-Key``; ``public`` for an operation without a
    token (no ``EVERY``, no security)."""
    for cls in errors:
        if not (isinstance(cls, type) and issubclass(cls, AppError)):
            raise TypeError(f"declare() takes AppError classes, not {cls!r}")
    operation = Operation(tuple(errors), key, public)

    def mark(handler: Handler) -> Handler:
        setattr(handler, _ATTRIBUTE, operation)
        return handler

    return mark


def operation_of(handler: Callable[..., Any] | None) -> Operation:
    """The declaration of a route's handler; ``Undeclared`` when it has none."""
    operation = getattr(handler, _ATTRIBUTE, None)
    if not isinstance(operation, Operation):
        name = getattr(handler, "__qualname__", repr(handler))
        raise Undeclared(
            f"{name} declares nothing: give it @declare(...) (app/operations.py) naming the "
            "problems it may answer and whether it takes an Idempotency-Key"
        )
    return operation


def key_required(handler: Callable[..., Any] | None) -> bool:
    """Whether the operation of ``handler`` (the request's matched endpoint) needs a key."""
    return handler is not None and operation_of(handler).key is Key.REQUIRED
