"""The crash tests' fault points are a gateway wrapper, not a hook on the money path: the
collection engine has none, and the wrapper is there only when ``SEATS_FAULT_POINT`` is set."""

from __future__ import annotations

from pathlib import Path

from app.main import create_app
from tests.conftest import make_settings

APP = Path(__file__).resolve().parents[2] / "app"


def test_the_money_path_carries_no_fault_hook() -> None:
    for path in [*sorted((APP / "collection").glob("*.py")), APP / "purchases" / "service.py"]:
        text = path.read_text()
        for hook in ("fault_point", "os.kill", "SIGKILL"):
            assert hook not in text, f"{path.name} has {hook}"


def test_the_gateway_is_wrapped_only_when_a_fault_point_is_set() -> None:
    plain = create_app(make_settings("sqlite+aiosqlite:///unused.db"))
    crashing = create_app(
        make_settings("sqlite+aiosqlite:///unused.db", fault_point="after_charge")
    )
    assert type(plain.state.gateway).__name__ == "SandboxGateway"
    assert type(crashing.state.gateway).__name__ == "CrashingGateway"
    assert crashing.state.collector.gateway is crashing.state.gateway
