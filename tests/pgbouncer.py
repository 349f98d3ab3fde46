"""Start Debian's PgBouncer (``/usr/sbin/pgbouncer``) in front of the test cluster, for tests
that need the real pooler: its refusals, its queue, its transaction pooling.

PgBouncer refuses to run as root: as root it runs as the ``postgres`` user, as the cluster
does in scripts/with-postgres (started as that user directly, so that signals reach it).
Authentication is ``trust`` (the throwaway cluster trusts loopback too); the users still have
to be listed in its auth file.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy.engine import make_url

from tests.live import free_port

PGBOUNCER = "/usr/sbin/pgbouncer"


def pgbouncer_binary() -> str | None:
    """The pgbouncer program, or None where it is not installed."""
    return shutil.which("pgbouncer") or (PGBOUNCER if os.access(PGBOUNCER, os.X_OK) else None)


class PgBouncer:
    """PgBouncer on a free loopback port in front of the server of ``database_url``.

    ``settings`` go to the ``[pgbouncer]`` section as they are (``pool_mode``,
    ``max_client_conn``, ``default_pool_size``, ``query_wait_timeout``...); ``url(...)`` is the
    service's URL through it, for the same database and user unless told otherwise.
    """

    def __init__(
        self, database_url: str, *, users: tuple[str, ...] = ("postgres",), **settings: object
    ) -> None:
        self.server = make_url(database_url)
        self.port = free_port()
        self.users = tuple(dict.fromkeys((str(self.server.username), *users)))
        self.settings: dict[str, object] = {
            "pool_mode": "transaction",
            "auth_type": "trust",
            # The service's own start-up parameters: unknown ones would refuse the login.
            "ignore_startup_parameters": "extra_float_digits",
            # The admin console (SHOW CLIENTS) for the harness's own user.
            "admin_users": str(self.server.username),
            **settings,
        }
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, *, username: str | None = None) -> str:
        """``database_url`` with PgBouncer's host and port (and ``username`` if given)."""
        parts: dict[str, object] = {"host": "127.0.0.1", "port": self.port}
        if username is not None:
            parts["username"] = username
        return self.server.set(**parts).render_as_string(hide_password=False)  # type: ignore[arg-type]

    def log_text(self) -> str:
        """PgBouncer's log so far."""
        assert self.dir is not None
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 20) -> PgBouncer:
        binary = pgbouncer_binary()
        assert binary, "pgbouncer is not installed"
        self.dir = Path(tempfile.mkdtemp(prefix="seats-pgbouncer."))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        (self.dir / "users.txt").write_text("".join(f'"{user}" ""\n' for user in self.users))
        self._write_ini()
        as_postgres: dict[str, Any] = {"user": "postgres", "group": "postgres"}
        self.proc = subprocess.Popen(
            [binary, str(self.dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **(as_postgres if os.geteuid() == 0 else {}),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.log_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not listen: {self.log_text()[-2000:]}")

    def _write_ini(self) -> None:
        assert self.dir is not None
        lines = [
            "[databases]",
            f"* = host={self.server.host} port={self.server.port}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            f"auth_file = {self.dir / 'users.txt'}",
            f"logfile = {self.dir / 'pgbouncer.log'}",
            *(f"{name} = {value}" for name, value in self.settings.items()),
        ]
        (self.dir / "pgbouncer.ini").write_text("\n".join(lines) + "\n")

    def reload(self, **settings: object) -> None:
        """Change settings of the running PgBouncer (SIGHUP), e.g. a smaller ``max_client_conn``
        once the service holds its connections: the clients it has stay, new ones are refused."""
        assert self.proc is not None
        self.settings.update(settings)
        self._write_ini()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            config = {row["key"]: row["value"] for row in self.show("CONFIG")}
            if all(config.get(name) == str(value) for name, value in settings.items()):
                return
            assert time.monotonic() < deadline, f"pgbouncer did not take {settings}"
            time.sleep(0.05)

    def show(self, what: str) -> list[dict[str, str]]:
        """A ``SHOW`` of the admin console (``CLIENTS``, ``POOLS``...) as rows, through psql:
        the console speaks only the simple query protocol."""
        bindir = os.environ.get("TEST_PG_BINDIR", "")
        psql = shutil.which("psql", path=bindir or None) or "psql"
        out = subprocess.run(
            [
                psql,
                "-X",
                "-A",
                "-F",
                "\t",
                "-P",
                "footer=off",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                str(self.server.username),
                "-d",
                "pgbouncer",
                "-c",
                f"SHOW {what}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        header = out[0].split("\t")
        return [dict(zip(header, line.split("\t"), strict=True)) for line in out[1:]]

    def clients(self) -> int:
        """Client connections to the pooled databases (the admin console's own left out)."""
        return sum(1 for row in self.show("CLIENTS") if row["database"] != "pgbouncer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
