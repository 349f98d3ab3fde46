"""Start the real service (``seats serve``) as a subprocess, for race and fault tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx
import pytest

from tests.conftest import NOW, ON_POSTGRES, SECRET, Api, restore_sqlite


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``seats serve --workers N`` on a free loopback port, ready when ``start()`` returns.

    Two workers may take half a minute to import on a loaded machine: ``start`` waits 90 s.
    """

    def __init__(
        self, database_url: str, *, workers: int = 2, args: tuple[str, ...] = (), **env: str
    ) -> None:
        self.port = free_port()
        self.args = args
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {
            **os.environ,
            "SEATS_DATABASE_URL": database_url,
            "SEATS_JWT_SECRET": SECRET,
            "SEATS_TEST_CLOCK": "1",
            "SEATS_LOG_LEVEL": "WARNING",
            "SEATS_DATABASE_POOL_SIZE": "20",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: nobody reads a pipe while the server runs, and once its buffer is
        # full every worker blocks on its next log line (a burst of tracebacks froze them all).
        self._stderr: IO[bytes] | None = None

    def start(self, timeout: float = 90) -> LiveServer:
        if self._stderr is None:
            # Open for the server's whole life (it may be restarted): closed by __exit__.
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                *self.args,
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.stderr_text()
                raise RuntimeError(f"server exited with {self.proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not become ready")

    def stderr_text(self) -> str:
        """Everything the server wrote to stderr so far."""
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        self._stderr.seek(0, 2)
        return text

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float = 10) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def on_clean_database(server: LiveServer, template: str) -> LiveServer:
    """``server``, shared by several tests, ready for the next one on a clean database.

    A start-up costs seconds (imports, migration check); a clean database costs milliseconds.
    On PostgreSQL the test's ``database_url`` fixture has emptied it already; on SQLite the
    server's file is replaced by a fresh copy of the migrated template. A server that died
    in an earlier test is started again rather than failing every test after it.
    """
    if not ON_POSTGRES:
        url = server.env["SEATS_DATABASE_URL"]
        restore_sqlite(Path(url.removeprefix("sqlite+aiosqlite:///")), template)
    if not server.running():
        server.start()
    return server


def crash_env(payments_url: str) -> dict[str, str]:
    """Settings of a server a test crashes and then retries against: the real payments server,
    and a key lock and an attempt's lease (wall clock) short enough for the retry to take
    over from the dead process."""
    return {
        "SEATS_PAYMENTS_GATEWAY": "http",
        "SEATS_PAYMENTS_URL": payments_url,
        "SEATS_IDEMPOTENCY_LOCK_SECONDS": "0.5",
        "SEATS_COLLECTION_LEASE_SECONDS": "0.5",
    }


async def buy_until_killed(
    database_url: str, fault_point: str, env: dict[str, str], key: str
) -> None:
    """acme (alice its primary admin, bob an admin) buys 5 seats with ``key`` on a server that
    kills itself at ``fault_point`` during the purchase (SIGKILL: nothing runs after it)."""
    with LiveServer(database_url, workers=1, SEATS_FAULT_POINT=fault_point, **env) as dying:
        async with httpx.AsyncClient(base_url=dying.url, timeout=10) as client:
            api = Api(client)
            await api.set_clock(NOW)
            assert (await api.put_account("acme")).status_code == 201
            for user_id, role in (("alice", "primary_admin"), ("bob", "admin")):
                assert (await api.put_user("acme", user_id, role)).status_code == 201
            with pytest.raises(httpx.TransportError):
                await api.buy(5, key=key)
        assert dying.wait_exit() == -signal.SIGKILL  # killed at the fault point
