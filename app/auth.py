"""Who is calling: JWT verification (SPEC §4, Authentication) and the caller's role.

The algorithm comes from configuration, never from the token's header, which rules out
``alg: none`` and HS256-signed-with-the-RSA-public-key confusion.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from app.config import Settings
from app.directory.models import Role
from app.errors import NotAdmin, NotFound, NotPrimaryAdmin, Unauthenticated, UnknownUser

SERVICE_SCOPE = "seats:internal"
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Principal:
    """What a valid token says: a user of one account, or an internal service."""

    subject: str
    account_id: str | None

    @property
    def is_service(self) -> bool:
        return self.account_id is None


@dataclass(frozen=True, slots=True)
class Caller:
    """The principal acting on one account, with the role the directory gives it."""

    account_id: str
    subject: str
    role: Role | None  # None for a service

    @property
    def is_service(self) -> bool:
        return self.role is None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"service:{self.subject}" if self.is_service else f"user:{self.subject}"

    def as_of_lock(self, role: Role | None) -> Caller:
        """The same caller with ``role``, its role as read after the plan's lock (R17).

        The role a request saw before it waited for the lock may be stale: the platform may
        have named another primary admin, or removed the user, meanwhile. A user no longer
        in the directory is refused as any unknown user is.
        """
        if self.is_service:
            return self
        if role is None:
            raise UnknownUser("The token's user is not a user of this account in the directory.")
        return Caller(self.account_id, self.subject, role)

    def require_primary_admin(self) -> None:
        """R1: only the primary account admin buys, removes or starts the trial."""
        if self.role is not Role.PRIMARY_ADMIN:
            raise NotPrimaryAdmin()

    def require_admin(self) -> None:
        """R5: admins and the primary admin manage agents."""
        if self.role is None or not self.role.is_admin:
            raise NotAdmin()

    def require_admin_or_service(self) -> None:
        """Reads of the ledger and audit log: admins and internal services."""
        if not self.is_service:
            self.require_admin()


def check_account_scope(principal: Principal, account_id: str) -> None:
    """A user token on another account's path: 404, as if it did not exist (no id leaks)."""
    if principal.account_id is not None and principal.account_id != account_id:
        raise NotFound("No such account.")


def caller_of(
    principal: Principal, account_id: str, *, account_exists: bool, role: Role | None
) -> Caller:
    """The caller, from what the directory says of the path's account and the token's user."""
    if principal.is_service:
        if not account_exists:
            raise NotFound("No such account.")
        return Caller(account_id, principal.subject, None)
    if role is None:
        raise UnknownUser("The token's user is not a user of this account in the directory.")
    return Caller(account_id, principal.subject, role)


# Verified tokens, by their text, until they expire. Checking an HS256 signature and the
# claims costs more than the hot read's own query; the inbox sends the same token on every
# page load. Bounded, least recently used first out.
TOKEN_CACHE_SIZE = 10_000


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self.key: Any = settings.jwt_public_key or settings.jwt_secret
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.max_lifetime = settings.jwt_max_lifetime_seconds
        required = ["exp", "sub"]
        required += ["iss"] if self.issuer else []
        required += ["aud"] if self.audience else []
        self.required = required
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def verify(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer`` header, or ``401 unauthenticated``."""
        if not authorization:
            raise Unauthenticated("Missing Authorization header.")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Authorization must be 'Bearer <token>'.")
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() < expires:  # PyJWT's own rule: expired once now >= exp
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, expires = self._decode(token)
        self._verified[token] = (principal, expires)
        if len(self._verified) > TOKEN_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        """Check the signature and the claims: the principal and when its token expires."""
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": self.required},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("The token has expired.") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"The token has no {exc.claim} claim.") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("The token's issuer is not the configured one.") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("The token is not meant for this service.") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("The token is invalid.") from exc
        subject = claims.get("sub")
        if not isinstance(subject, str) or not _ID.fullmatch(subject):
            raise Unauthenticated("The token's subject is invalid.")
        exp = claims["exp"]
        # RFC 7519's NumericDate is a JSON number; PyJWT also accepts a numeric string.
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise Unauthenticated("The token's exp is not a number.")
        expires = float(min(exp, 2**53))  # an int may be too large for a float
        if self.max_lifetime is not None and expires - time.time() > self.max_lifetime:
            # A stolen long-lived token would stay good for as long as it says.
            raise Unauthenticated(
                f"The token lives longer than the {self.max_lifetime} s this service accepts."
            )
        account_id = claims.get("account_id")
        if account_id is None:
            if SERVICE_SCOPE not in _scopes(claims.get("scope")):
                raise Unauthenticated("A token needs an account_id or the seats:internal scope.")
            return Principal(subject, None), expires
        if not isinstance(account_id, str) or not _ID.fullmatch(account_id):
            raise Unauthenticated("The token's account_id is invalid.")
        return Principal(subject, account_id), expires


def _scopes(value: object) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [s for s in value if isinstance(s, str)]
    return []


def mint_token(
    settings: Settings,
    *,
    subject: str,
    account_id: str | None = None,
    ttl: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> str:
    """A token for development and operators (``seats token``); the platform mints its own."""
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {"sub": subject, "iat": issued, "exp": issued + ttl}
    if account_id is None:
        claims["scope"] = SERVICE_SCOPE
    else:
        claims["account_id"] = account_id
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_algorithm == "RS256":
        if not settings.jwt_private_key:
            raise ValueError("SEATS_JWT_PRIVATE_KEY is needed to mint RS256 tokens")
        return jwt.encode(claims, settings.jwt_private_key, algorithm="RS256")
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
