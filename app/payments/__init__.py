"""Payments: the Gateway port and its sandbox and http adapters (SPEC §6)."""

from app.payments.factory import make_gateway
from app.payments.gateway import (
    ChargeDeclined,
    ChargeResult,
    ChargeSucceeded,
    Gateway,
    GatewayRejected,
    GatewayUnavailable,
    VoidSucceeded,
)
from app.payments.http import HttpGateway
from app.payments.sandbox import SandboxGateway

__all__ = [
    "ChargeDeclined",
    "ChargeResult",
    "ChargeSucceeded",
    "Gateway",
    "GatewayRejected",
    "GatewayUnavailable",
    "HttpGateway",
    "SandboxGateway",
    "VoidSucceeded",
    "make_gateway",
]
