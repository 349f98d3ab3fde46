"""The sandbox gateway (SPEC §6): in process, stateless, deterministic."""

from __future__ import annotations

import hashlib

import pytest

from app.payments import (
    ChargeDeclined,
    ChargeResult,
    ChargeSucceeded,
    Gateway,
    GatewayUnavailable,
    SandboxGateway,
    VoidSucceeded,
    make_gateway,
)


async def charge(
    gateway: Gateway,
    payment_method: str = "pm_card_visa",
    key: str = "inv_1",
    *,
    amount: int = 1900,
    currency: str = "USD",
) -> ChargeResult:
    return await gateway.charge(
        payment_method=payment_method,
        amount=amount,
        currency=currency,
        idempotency_key=key,
        description="3 Conversations seats",
    )


async def test_charges_an_ordinary_payment_method() -> None:
    result = await charge(SandboxGateway())
    assert isinstance(result, ChargeSucceeded)
    assert result.charge_id.startswith("ch_")


async def test_declines_payment_methods_starting_with_pm_decline() -> None:
    result = await charge(SandboxGateway(), "pm_decline_insufficient_funds")
    assert result == ChargeDeclined("card_declined")


async def test_pm_unavailable_simulates_an_outage() -> None:
    with pytest.raises(GatewayUnavailable):
        await charge(SandboxGateway(), "pm_unavailable_gateway_down")


async def test_the_same_key_gives_the_same_charge_in_every_process() -> None:
    first = await charge(SandboxGateway(), key="inv_1")
    again = await charge(SandboxGateway(), key="inv_1")
    other = await charge(SandboxGateway(), key="inv_2")
    assert first == again
    assert first != other


async def test_the_charge_id_is_derived_from_the_key() -> None:
    result = await charge(SandboxGateway(), key="inv_1")
    assert result == ChargeSucceeded("ch_" + hashlib.sha256(b"inv_1").hexdigest()[:24])


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(0, "USD"), (-100, "USD"), (1900, "usd"), (1900, "US"), (1900, "USDX")],
)
async def test_a_nonsensical_charge_is_a_programming_error(amount: int, currency: str) -> None:
    with pytest.raises(ValueError):
        await charge(SandboxGateway(), amount=amount, currency=currency)


@pytest.mark.parametrize("payment_method", ["pm_card_visa", "pm_unavailable_gateway_down"])
async def test_r14_a_void_always_succeeds_refunding_the_charge_of_the_key(
    payment_method: str,
) -> None:
    gateway = SandboxGateway()
    charged = ChargeSucceeded("ch_" + hashlib.sha256(b"inv_1").hexdigest()[:24])
    if payment_method == "pm_card_visa":
        assert await charge(gateway, payment_method, key="inv_1") == charged
    # Stateless, it answers the same in every process, whatever happened before.
    assert await gateway.void(idempotency_key="inv_1") == VoidSucceeded(charged.charge_id)
    assert await SandboxGateway().void(idempotency_key="inv_1") == VoidSucceeded(charged.charge_id)


async def test_voiding_an_empty_key_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        await SandboxGateway().void(idempotency_key="")


async def test_aclose_is_a_no_op() -> None:
    gateway = SandboxGateway()
    await gateway.aclose()
    assert isinstance(await charge(gateway), ChargeSucceeded)


def test_the_factory_builds_the_sandbox() -> None:
    gateway = make_gateway("sandbox", None, connect_timeout=2.0, read_timeout=10.0)
    assert isinstance(gateway, SandboxGateway)


def test_the_factory_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown payments gateway"):
        make_gateway("stripe", None, connect_timeout=2.0, read_timeout=10.0)
