"""The agent check's worker CPU per request under each HTTP parser, with and without the cache.

    scripts/with-postgres .venv/bin/python bench/hot_ab.py

For each of h11 / httptools x cache off / on: ``seats serve --workers 1`` on the throwaway
database, one account with an agent, ``wrk -t1 -c8`` on one agent check (2 s warm-up, 5 s
measured), and the worker's CPU from /proc divided by wrk's request count. One key: with the
cache on, every measured request is a hit. Compare the four rows of one run with each other.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import NOW, SECRET, Api, user_token  # noqa: E402
from tests.live import free_port  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def seed(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        api = Api(client)
        await api.set_clock(NOW)
        if (await api.put_account("acme")).status_code == 201:
            for user, role in (("alice", "primary_admin"), ("bob", "admin"), ("carol", "user")):
                await api.put_user("acme", user, role)
            await api.start_trial()
            await api.assign("bob")


def wrk(url: str, token: str, seconds: int) -> str:
    argv = ["wrk", "-t1", "-c8", f"-d{seconds}s", "-H", f"Authorization: Bearer {token}", url]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def measure(parser: str, cache: bool) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SEATS_DATABASE_URL": os.environ["TEST_DATABASE_URL"],
        "SEATS_JWT_SECRET": SECRET,
        "SEATS_TEST_CLOCK": "1",
        "SEATS_LOG_LEVEL": "INFO",
        "SEATS_HTTP_PARSER": parser,
        "SEATS_ACCESS_CACHE": "1" if cache else "0",
    }
    argv = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        asyncio.run(seed(base))
        url = base + "/v1/accounts/acme/conversations/agents/bob"
        token = user_token("acme", "carol")
        wrk(url, token, 2)
        before = cpu_seconds(proc.pid)
        out = wrk(url, token, 5)
        used = cpu_seconds(proc.pid) - before
        match = re.search(r"(\d+) requests in", out)
        assert match and "Non-2xx" not in out, out
        n = int(match[1])
        print(
            f"{parser:9} cache {'on ' if cache else 'off'} {n / 5:8.0f} req/s "
            f"{used / n * 1e6:6.0f} us CPU per request",
            flush=True,
        )
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    for parser in ("h11", "httptools"):
        for cache in (False, True):
            measure(parser, cache)


if __name__ == "__main__":
    main()
