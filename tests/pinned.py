"""Clients kept on one worker each of ``seats serve --workers N``, for the tests that must reach
every worker (a revocation, a stale read).

Each client keeps one keep-alive connection, and each connection is served by one worker
process: the worker that holds the accepted socket, found from /proc. ``pin_to_every_worker``
opens clients until every worker holds enough of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.conftest import NOW, Api
from tests.live import LiveServer


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def worker_of(server: LiveServer, client_port: int) -> int:
    """The pid of the worker that accepted the connection from ``client_port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server.port and int(remote, 16) == client_port:
            inodes.add(fields[9])
    assert server.proc is not None
    for pid in children(server.proc.pid):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return pid
    raise AssertionError(f"no worker holds the connection from port {client_port}")


class Pinned:
    """A client with one keep-alive connection, so one worker (``worker``, once pinned).

    ``check()`` asks the agent check at ``check_path`` as ``token`` (or another token)."""

    def __init__(self, url: str, check_path: str, token: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=url, limits=httpx.Limits(max_connections=1), timeout=30
        )
        self.check_path = check_path
        self.token = token
        self.port = 0
        self.worker = 0

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        r = await self.client.request(method, path, **kwargs)
        port = r.extensions["network_stream"].get_extra_info("client_addr")[1]
        assert self.port in (0, port), "the connection changed"
        self.port = port
        return r

    async def check(self, token: str | None = None) -> tuple[bool, bool]:
        """The agent check's ``(agent, active)``."""
        headers = {"Authorization": f"Bearer {token or self.token}"}
        r = await self.request("GET", self.check_path, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        return body["agent"], body["active"]


P = TypeVar("P", bound=Pinned)


async def pin_to_every_worker(
    server: LiveServer, make: Callable[[], P], *, per_worker: int = 2
) -> list[P]:
    """Clients from ``make`` until each of the server's workers holds ``per_worker`` of them;
    each has answered the check once, as an active agent."""
    clients: list[P] = []
    workers: dict[int, int] = {}
    try:
        while len(workers) < server.workers or min(workers.values()) < per_worker:
            assert len(clients) < 30 * server.workers, f"the kernel kept connections on {workers}"
            one = make()
            clients.append(one)
            assert await one.check() == (True, True)
            one.worker = worker_of(server, one.port)
            workers[one.worker] = workers.get(one.worker, 0) + 1
    except BaseException:
        await close_all(clients)
        raise
    return clients


async def close_all(clients: list[P]) -> None:
    for one in clients:
        await one.client.aclose()


async def seed_an_agent(api: Api) -> None:
    """acme on its trial at ``NOW``: alice its primary admin, carol a user, bob an agent."""
    await api.set_clock(NOW)
    assert (await api.put_account("acme")).status_code == 201
    for user_id, role in (("alice", "primary_admin"), ("carol", "user"), ("bob", "user")):
        assert (await api.put_user("acme", user_id, role)).status_code == 201
    assert (await api.start_trial()).status_code == 201
    assert (await api.assign("bob")).status_code == 201
