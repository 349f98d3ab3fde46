"""Start a real PgBouncer in front of the test PostgreSQL, in transaction pooling mode.

    with PgBouncer(os.environ["TEST_DATABASE_URL"], default_pool_size=5) as bouncer:
        engine = create_async_engine(bouncer.url)  # same driver, database and user

``PgBouncer(url)`` writes a config into a temporary directory, starts ``pgbouncer`` (Debian's
1.18 at /usr/sbin/pgbouncer unless ``PGBOUNCER`` names another) on a free loopback port, and
waits until it accepts connections; ``stop()`` (or leaving the ``with``) stops it and removes
the directory. As root it runs as the ``postgres`` user (PgBouncer refuses to run as root),
in a directory that user owns, as ``scripts/with-postgres`` runs the cluster.

Authentication is ``trust`` on both sides (the throwaway cluster trusts loopback), so the
user list only names the URL's user. Every database name is forwarded to the same server
(``* = host=... port=...``), so a test may create databases of its own.

``max_prepared_statements`` is written only when the installed PgBouncer knows it (1.21+):
Debian's 1.18 refuses unknown settings, so on it the option is ignored and ``supports_prepared
_statements`` says so (a test that needs the fast path skips on it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import pytest
from sqlalchemy.engine import make_url

PGBOUNCER = os.environ.get("PGBOUNCER") or shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def pgbouncer_version(binary: str = PGBOUNCER) -> tuple[int, int] | None:
    """The installed PgBouncer's (major, minor), or None when there is none."""
    if not Path(binary).exists():
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"PgBouncer (\d+)\.(\d+)", out.stdout + out.stderr)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgBouncer:
    """One PgBouncer process in ``pool_mode`` (transaction by default) in front of
    ``database_url`` (a SQLAlchemy or plain PostgreSQL URL of a cluster on this machine)."""

    def __init__(
        self,
        database_url: str,
        *,
        pool_mode: str = "transaction",
        max_client_conn: int = 200,
        default_pool_size: int = 20,
        max_prepared_statements: int | None = None,
        reserve_pool_size: int = 0,
        query_wait_timeout: int = 120,
        extra: dict[str, str] | None = None,
        binary: str = PGBOUNCER,
    ) -> None:
        self.server_url = make_url(database_url)
        self.pool_mode = pool_mode
        self.max_client_conn = max_client_conn
        self.default_pool_size = default_pool_size
        self.binary = binary
        self.version = pgbouncer_version(binary)
        self.supports_prepared_statements = self.version is not None and self.version >= (1, 21)
        self.max_prepared_statements = (
            max_prepared_statements if self.supports_prepared_statements else None
        )
        self.reserve_pool_size = reserve_pool_size
        self.query_wait_timeout = query_wait_timeout
        self.extra = dict(extra or {})
        self.port = 0
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # The URL to reach it -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``database_url`` with PgBouncer's host and port: same driver, user and database."""
        return self.server_url.set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False
        )

    @property
    def dsn(self) -> str:
        """The plain ``postgresql://`` DSN asyncpg connects to."""
        url = self.server_url.set(drivername="postgresql", host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    # Life cycle --------------------------------------------------------------------------

    def _config(self) -> str:
        assert self.dir is not None
        server = self.server_url
        lines = [
            "[databases]",
            f"* = host={server.host or '127.0.0.1'} port={server.port or 5432}",
            "",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            f"unix_socket_dir = {self.dir}",
            f"pidfile = {self.dir / 'pgbouncer.pid'}",
            f"logfile = {self.dir / 'pgbouncer.log'}",
            "auth_type = trust",
            f"auth_file = {self.dir / 'userlist.txt'}",
            f"admin_users = {server.username or 'postgres'}",
            f"pool_mode = {self.pool_mode}",
            f"max_client_conn = {self.max_client_conn}",
            f"default_pool_size = {self.default_pool_size}",
            f"reserve_pool_size = {self.reserve_pool_size}",
            f"query_wait_timeout = {self.query_wait_timeout}",
            "server_reset_query = DISCARD ALL",
            "log_connections = 0",
            "log_disconnections = 0",
        ]
        if self.max_prepared_statements is not None:
            lines.append(f"max_prepared_statements = {self.max_prepared_statements}")
        lines += [f"{key} = {value}" for key, value in self.extra.items()]
        return "\n".join(lines) + "\n"

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self, timeout: float = 30) -> PgBouncer:
        if self.version is None:
            pytest.skip(f"pgbouncer not installed ({self.binary})")
        self.dir = Path(tempfile.mkdtemp(prefix="seats-pgbouncer."))
        user = self.server_url.username or "postgres"
        (self.dir / "userlist.txt").write_text(f'"{user}" ""\n')
        for _attempt in range(3):
            self.port = _free_port()
            (self.dir / "pgbouncer.ini").write_text(self._config())
            if os.geteuid() == 0:
                shutil.chown(self.dir, "postgres")
                for path in self.dir.iterdir():
                    shutil.chown(path, "postgres")
            self.proc = subprocess.Popen(
                [*self._as_owner(), self.binary, str(self.dir / "pgbouncer.ini")],
                cwd=self.dir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            if self._wait_ready(timeout):
                return self
            self._kill()
        log = self.log_text()
        self.stop()
        raise RuntimeError(f"pgbouncer did not start: {log[-2000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def log_text(self) -> str:
        """What PgBouncer logged so far (its own view of refusals and protocol errors)."""
        if self.dir is None or not (self.dir / "pgbouncer.log").exists():
            return ""
        return (self.dir / "pgbouncer.log").read_text(errors="replace")

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # SIGINT is PgBouncer's "exit now"; sent to PgBouncer itself (its pidfile), not to the
        # runuser in front of it.
        pid = self._pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def _pid(self) -> int | None:
        pidfile = None if self.dir is None else self.dir / "pgbouncer.pid"
        if pidfile is None or not pidfile.exists():
            return None
        text = pidfile.read_text().strip()
        return int(text) if text.isdigit() else None

    # Changing it while it runs -------------------------------------------------------------

    def reload(self, **settings: int) -> None:
        """Change settings of the running PgBouncer (its config file, then SIGHUP), e.g. a
        smaller ``max_client_conn`` once the service holds its connections: the clients it has
        stay, new ones are refused. Returns once ``SHOW CONFIG`` has the new values."""
        for name, value in settings.items():
            assert hasattr(self, name), name
            setattr(self, name, value)
        assert self.dir is not None
        (self.dir / "pgbouncer.ini").write_text(self._config())
        pid = self._pid()
        assert pid is not None, "pgbouncer wrote no pidfile"
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            config = {row["key"]: row["value"] for row in self.show("CONFIG")}
            if all(config.get(name) == str(value) for name, value in settings.items()):
                return
            assert time.monotonic() < deadline, f"pgbouncer did not take {settings}"
            time.sleep(0.05)

    def show(self, what: str) -> list[dict[str, str]]:
        """A ``SHOW`` of the admin console (``CLIENTS``, ``POOLS``, ``CONFIG``...) as rows,
        through psql: the console speaks only the simple query protocol."""
        bindir = os.environ.get("TEST_PG_BINDIR")
        psql = shutil.which("psql", path=bindir) if bindir else shutil.which("psql")
        assert psql, "psql not found"
        console = self.server_url.set(drivername="postgresql", host="127.0.0.1", port=self.port)
        dsn = console.set(database="pgbouncer").render_as_string(hide_password=False)
        lines = subprocess.run(
            [psql, "-X", "-A", "-F", "\t", "-P", "footer=off", "-c", f"SHOW {what}", dsn],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        header = lines[0].split("\t")
        return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]

    def clients(self) -> int:
        """Client connections to the pooled databases (the admin console's own left out)."""
        return sum(1 for row in self.show("CLIENTS") if row["database"] != "pgbouncer")

    def stop(self) -> None:
        self._kill()
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


@contextmanager
def pgbouncer(database_url: str, **options: object) -> Iterator[PgBouncer]:
    """``PgBouncer(database_url, **options)``, started and stopped around the block."""
    bouncer = PgBouncer(database_url, **options)  # type: ignore[arg-type]
    with bouncer:
        yield bouncer


@pytest.fixture(scope="module")
def pgbouncer_url() -> Iterator[str]:
    """A PgBouncer 1.18 (transaction pooling) in front of TEST_DATABASE_URL, for a module's
    tests; skips without PostgreSQL or without pgbouncer."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL)")
    with pgbouncer(url) as bouncer:
        yield bouncer.url
