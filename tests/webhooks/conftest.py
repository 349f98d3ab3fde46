"""Fixtures for the webhook tests: a loopback receiver, an in-process worker, helpers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import pytest

from app.config import Settings
from app.webhooks.worker import Worker
from tests.conftest import SECRET, Api, make_settings
from tests.webhooks.receiver import Receiver

WORKER_ENV = {
    "SEATS_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "SEATS_WEBHOOK_POLL_SECONDS": "0.05",
}


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    """``@pytest.mark.settings(name=value)`` overrides some for a test, as everywhere."""
    marker = request.node.get_closest_marker("settings")
    return make_settings(
        database_url,
        **{
            "webhook_allow_hosts": "127.0.0.1",
            "webhook_poll_seconds": 0.05,
            **(marker.kwargs if marker else {}),
        },
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
async def worker(app: Any, settings: Settings) -> AsyncIterator[Worker]:
    """A worker running in this event loop until the test ends."""
    running = Worker(app.state.db, app.state.clock, settings)
    task = asyncio.create_task(running.run())
    yield running
    running.stop()
    await asyncio.wait_for(task, 30)


async def create_endpoint(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    """A new endpoint through the API; the body includes its secret."""
    r = await api.client.post(
        "/internal/v1/webhooks/endpoints", json={"url": url, **fields}, headers=api.as_service()
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def endpoint(api: Api, endpoint_id: str) -> dict[str, Any]:
    r = await api.client.get(
        f"/internal/v1/webhooks/endpoints/{endpoint_id}", headers=api.as_service()
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def attempts(api: Api, endpoint_id: str) -> list[dict[str, Any]]:
    """The endpoint's delivery log, oldest first."""
    r = await api.client.get(
        f"/internal/v1/webhooks/endpoints/{endpoint_id}/deliveries?limit=100",
        headers=api.as_service(),
    )
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["data"]))


async def until_attempts(api: Api, endpoint_id: str, count: int, timeout: float = 60) -> list[Any]:
    """Wait until the log holds ``count`` attempts (the worker records after the send)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        log = await attempts(api, endpoint_id)
        if len(log) >= count:
            return log
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{len(log)} of {count} attempts logged")
        await asyncio.sleep(0.05)


def parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


class WorkerProcess:
    """``seats webhooks deliver`` as a subprocess, as it runs in production."""

    def __init__(self, database_url: str, **env: str) -> None:
        self.env = {
            **os.environ,
            "SEATS_DATABASE_URL": database_url,
            "SEATS_JWT_SECRET": SECRET,
            "SEATS_TEST_CLOCK": "1",
            "SEATS_LOG_LEVEL": "WARNING",
            **WORKER_ENV,
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a worker logging into a full pipe would block.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()

    def start(self) -> WorkerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "webhooks", "deliver"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        return self

    def output(self) -> str:
        """What the worker logged so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
