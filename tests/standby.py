"""A streaming standby of the test cluster: ``pg_basebackup -R`` from the primary of
scripts/with-postgres, started on a free loopback port with the same server binaries.

For tests of what the service does against a server in recovery (``/readyz``), and for the
tests of replicas and failover: ``promote()`` turns it into a primary. A failover test kills
its primary, so it starts one of its own (``Primary``: a fresh cluster, which it may stop
hard) and a standby of that.

As root, every PostgreSQL program runs as the ``postgres`` user, as scripts/with-postgres runs
the primary; the cluster's loopback ``trust`` covers the replication connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy.engine import URL, make_url

from tests.live import free_port


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class _Cluster:
    """A PostgreSQL server of the test's own in a temporary directory, on a free loopback
    port, run with the server binaries of scripts/with-postgres."""

    name = "cluster"  # names its directory and its log
    # How ``stop()`` ends it (``pg_ctl stop -m``).
    stop_mode = "fast"

    def __init__(self, *, bindir: str | None = None) -> None:
        found = bindir or os.environ.get("TEST_PG_BINDIR")
        assert found, "needs the server binaries (TEST_PG_BINDIR of scripts/with-postgres)"
        self.bindir = Path(found)
        self.port = free_port()
        self.dir: Path | None = None

    @property
    def datadir(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    @property
    def log(self) -> Path:
        assert self.dir is not None
        return self.dir / f"{self.name}.log"

    def _make_dir(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"seats-{self.name}."))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")

    def _run(self, *args: str) -> str:
        assert self.dir is not None
        done = subprocess.run(
            _as_postgres(list(args)), capture_output=True, text=True, cwd=self.dir
        )
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stderr}{log}")
        return done.stdout

    def _pg_ctl(self, *args: str) -> str:
        return self._run(str(self.bindir / "pg_ctl"), *args, "-D", str(self.datadir))

    def _start_server(self, settings: str) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off {settings}"
        )
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log), "-o", options)

    def psql(self, sql: str, url: str) -> str:
        """The rows of ``sql`` on the server of ``url``, one a line (``psql -At``)."""
        target = make_url(url)
        return self._run(
            str(self.bindir / "psql"),
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(target.host),
            "-p",
            str(target.port),
            "-U",
            str(target.username),
            "-d",
            str(target.database),
            "-c",
            sql,
        )

    def stop(self) -> None:
        if self.dir is None:
            return
        if (self.datadir / "postmaster.pid").exists():
            subprocess.run(
                _as_postgres(
                    [
                        str(self.bindir / "pg_ctl"),
                        "stop",
                        "-D",
                        str(self.datadir),
                        "-m",
                        self.stop_mode,
                    ]
                ),
                capture_output=True,
                cwd=self.dir,
            )
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self) -> Self:
        return self.start()

    def start(self) -> Self:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Primary(_Cluster):
    """A throwaway primary of its own (``initdb``), for a test that stops it hard; ``url()``
    names one of its databases as the ``postgres`` superuser."""

    name = "primary"
    stop_mode = "immediate"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> Self:
        self._make_dir()
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-A",
            "trust",  # loopback only; covers the standby's replication connection too
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        self._start_server("-c max_connections=100 -c wal_level=replica")
        return self

    def replicate_synchronously(self) -> None:
        """A commit returns only once a standby has it: what a failover that loses nothing
        committed needs (with asynchronous replication the last commits before a crash may
        never reach the standby). Set after the standby is streaming, on this server only."""
        self.psql("ALTER SYSTEM SET synchronous_standby_names = '*'", self.url())
        self.psql("SELECT pg_reload_conf()", self.url())

    def kill(self) -> None:
        """Stop hard, as a crash: ``pg_ctl stop -m immediate`` (no shutdown checkpoint, every
        connection cut)."""
        self._pg_ctl("stop", "-m", "immediate")


class Standby(_Cluster):
    """A hot standby of the server of ``primary_url``, replicating by streaming."""

    name = "standby"

    def __init__(
        self,
        primary_url: str,
        *,
        bindir: str | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        super().__init__(bindir=bindir)
        self.primary = make_url(primary_url)
        # More server settings (``recovery_min_apply_delay`` for a standby that lags on
        # purpose).
        self.settings = settings or {}

    def url(self) -> str:
        """``primary_url`` pointed at the standby: same database, same user."""
        return self.primary.set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False
        )

    def _primary_settings(self) -> str:
        """The settings a hot standby must not set lower than its primary's (PostgreSQL
        refuses to start otherwise), as the primary runs with them."""
        names = (
            "max_connections",
            "max_worker_processes",
            "max_wal_senders",
            "max_prepared_transactions",
            "max_locks_per_transaction",
        )
        values = self.psql(
            " UNION ALL ".join(f"SELECT '{name}=' || current_setting('{name}')" for name in names),
            self.primary.render_as_string(hide_password=False),
        )
        return " ".join(f"-c {line}" for line in values.split())

    def start(self) -> Self:
        self._make_dir()
        self._run(
            str(self.bindir / "pg_basebackup"),
            "-h",
            str(self.primary.host),
            "-p",
            str(self.primary.port),
            "-U",
            str(self.primary.username),
            "-D",
            str(self.datadir),
            "-R",  # standby.signal and primary_conninfo: a standby from its first start
            "-X",
            "stream",
            "--checkpoint=fast",
            "--no-sync",
        )
        self._start_server(
            f"-c hot_standby=on {self._primary_settings()}"
            + "".join(f" -c {name}={value}" for name, value in self.settings.items())
        )
        return self

    def promote(self) -> None:
        """End recovery: the standby becomes a primary that takes writes."""
        self._pg_ctl("promote", "-w")


def multi_host_url(urls: list[str]) -> str:
    """One SQLAlchemy URL naming the hosts of ``urls`` in their order (same database and user
    as the first), which connects to whichever takes writes: the form of a failover
    ``SEATS_DATABASE_URL`` (SQLAlchemy's asyncpg dialect passes each ``host=`` on)."""
    first = make_url(urls[0])
    hosts = [f"{make_url(url).host}:{make_url(url).port}" for url in urls]
    return URL.create(
        first.drivername,
        username=first.username,
        password=first.password,
        database=first.database,
        query={**first.query, "host": hosts, "target_session_attrs": "read-write"},
    ).render_as_string(hide_password=False)
