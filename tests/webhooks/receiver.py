"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 in a background thread.

It verifies every delivery with the ``standardwebhooks`` library, against each secret the
test says the endpoint may hold, and answers what the test planned (200 by default):

    with Receiver() as receiver:
        receiver.plan("/a", 500)          # the next request to /a gets a 500
        hold = receiver.hold("/a")        # the next request to /a waits for hold.set()
        got = receiver.wait_for(3)        # blocks until three requests came in
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Delivery:
    """One request as received: path, lower-cased headers, body, and who could verify it."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified_by: frozenset[str]
    received_at: float  # wall clock, time.time()

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)
    deliveries: list[Delivery] = field(default_factory=list)
    plans: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    holds: dict[str, deque[threading.Event]] = field(default_factory=lambda: defaultdict(deque))
    secrets: set[str] = field(default_factory=set)
    default_status: int = 200
    delay: float = 0.0  # seconds before each answer

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)


class Receiver:
    """The server; ``url(path)`` is where an endpoint should point."""

    def __init__(self) -> None:
        self.state = state = _State()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with state.lock:
                    secrets = set(state.secrets)
                    hold = state.holds[self.path].popleft() if state.holds[self.path] else None
                    plan = state.plans[self.path]
                    status = plan.popleft() if plan else state.default_status
                verified = set()
                for secret in secrets:
                    try:
                        Webhook(secret).verify(body, headers)
                    except WebhookVerificationError:
                        continue
                    verified.add(secret)
                delivery = Delivery(self.path, headers, body, frozenset(verified), time.time())
                with state.lock:
                    state.deliveries.append(delivery)
                    state.arrived.notify_all()
                if hold is not None:
                    hold.wait(30)
                if state.delay:
                    time.sleep(state.delay)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def trust(self, *secrets: str) -> None:
        """Verify deliveries against these secrets too."""
        with self.state.lock:
            self.state.secrets.update(secrets)

    def plan(self, path: str, *statuses: int) -> None:
        """The next requests to ``path`` get these statuses, in order."""
        with self.state.lock:
            self.state.plans[path].extend(statuses)

    def always(self, status: int) -> None:
        """Answer ``status`` when nothing is planned."""
        with self.state.lock:
            self.state.default_status = status

    def hold(self, path: str) -> threading.Event:
        """The next request to ``path`` is answered only once the returned event is set."""
        release = threading.Event()
        with self.state.lock:
            self.state.holds[path].append(release)
        return release

    @property
    def deliveries(self) -> list[Delivery]:
        with self.state.lock:
            return list(self.state.deliveries)

    def to(self, path: str) -> list[Delivery]:
        """The deliveries to ``path``, in arrival order."""
        return [d for d in self.deliveries if d.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 60) -> list[Delivery]:
        """Block until ``count`` deliveries (to ``path``, if given) arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self.state.lock:
            while True:
                got = [d for d in self.state.deliveries if path is None or d.path == path]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(got)} of {count} deliveries after {timeout} s")
                self.state.arrived.wait(left)

    async def until(
        self, count: int, path: str | None = None, timeout: float = 60
    ) -> list[Delivery]:
        """``wait_for`` that lets the event loop run (an in-process worker shares it)."""
        return await asyncio.to_thread(self.wait_for, count, path, timeout)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self.state.lock:
            for queue in self.state.holds.values():
                for release in queue:
                    release.set()
        self.server.shutdown()
        self.server.server_close()
