"""A real payments service for tests: an HTTP server on 127.0.0.1 in a background thread.

It implements the contract ``app.payments.http`` documents (``POST /charges`` with an
``Idempotency-Key``, ``POST /charges/{key}/void``), records every charge and void, and can be
told to misbehave in the ways that matter for a charge: answer late, fail after or before
charging, throttle, refuse the request itself (``refuse_next(n, 401)``, or a required
``api_key``), or stop altogether.

A void makes its key unable to charge, ever: it answers ``{"status": "voided",
"refunded_charge_id": ...}`` (the key's captured charge, now refunded, or null), the same again
for a second void, and any later charge under that key is a **decline** (``402 {"status":
"declined", "reason": "key_voided"}``), never a charge: definitive, so the caller does not retry
it. (Not 409: the client reads 409 as "still being processed" and would retry it.)

    with PaymentsServer() as server:
        gateway = HttpGateway(server.url)
        server.fail_next(1, "timeout_after_charge")
        ...
        assert len(server.charges_for(key)) == 1

Run it by hand with ``python -m tests.payments_server --port 8099``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, get_args
from urllib.parse import unquote, urlsplit

# Faults apply to the next POSTs to /charges and /charges/{key}/void alike ("charge" below reads
# "void" for a void).
FaultMode = Literal[
    "timeout_after_charge",  # record the charge, then answer only after ``hang_seconds``
    "error_after_charge",  # record the charge, then answer 500
    "error_before_charge",  # answer 503 without charging
    "rate_limited",  # answer 429 with ``Retry-After: <retry_after>`` without charging
    "bad_request",  # answer 400 without charging (a permanent refusal)
    "malformed",  # answer 200 with a body that is not JSON, without charging
]
FAULT_MODES: frozenset[str] = frozenset(get_args(FaultMode))
CHARGE_FIELDS = ("payment_method", "amount", "currency", "description")


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as the server saw it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class _Answer:
    """The stored answer for one idempotency key, with the request it answered."""

    request: dict[str, Any]
    status: int
    body: dict[str, Any]


class PaymentsServer:
    """The platform's payments service, in a thread; a context manager that starts and stops it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None) -> None:
        self.host = host
        # When set, a POST without "Authorization: Bearer <api_key>" is refused with 401.
        self.api_key = api_key
        self.hang_seconds = 3.0  # how long "timeout_after_charge" holds its answer
        self.retry_after = "0"  # the Retry-After header "rate_limited" sends
        self._port = port
        self._lock = threading.Lock()
        self._faults: deque[str] = deque()
        self._refusals: deque[int] = deque()
        self._voided: dict[str, str | None] = {}  # key -> the charge its void refunded
        self._voids: list[dict[str, Any]] = []
        self._answers: dict[str, _Answer] = {}
        self._charges: list[dict[str, Any]] = []
        self._received: list[ReceivedRequest] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        # Wakes the handlers held by "timeout_after_charge" when the server stops.
        self._stopping = threading.Event()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Listen (again) on the same port: the first start picks an ephemeral one."""
        if self._httpd is not None:
            raise RuntimeError("the payments server is already running")
        self._stopping = threading.Event()
        self._httpd = _Server((self.host, self._port), self)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"payments-server:{self._port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening, so new connections are refused; the stored charges are kept."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> PaymentsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    # --- faults and introspection ------------------------------------------------------------

    def fail_next(self, n: int, mode: str) -> None:
        """The next ``n`` requests to POST /charges misbehave as ``mode`` (see ``FaultMode``)."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {sorted(FAULT_MODES)}")
        with self._lock:
            self._faults.extend([mode] * n)

    def refuse_next(self, n: int, status: int) -> None:
        """The next ``n`` POSTs (charges or voids) are refused with ``status`` (a 4xx), charging
        nothing: what a wrong URL (404), bad credentials (401/403) or a request the service
        cannot read (400/422) look like."""
        if not 400 <= status < 500:
            raise ValueError(f"a refusal is a 4xx status, got {status}")
        with self._lock:
            self._refusals.extend([status] * n)

    @property
    def voids(self) -> list[dict[str, Any]]:
        """Every void that took effect (the first for its key), oldest first (a copy)."""
        with self._lock:
            return [dict(void) for void in self._voids]

    def is_voided(self, idempotency_key: str) -> bool:
        with self._lock:
            return idempotency_key in self._voided

    @property
    def captured(self) -> list[dict[str, Any]]:
        """The charges that were not refunded by a void: the money actually collected."""
        with self._lock:
            refunded = set(self._voided.values())
            return [dict(c) for c in self._charges if c["id"] not in refunded]

    @property
    def charges(self) -> list[dict[str, Any]]:
        """Every charge recorded, oldest first (a copy)."""
        with self._lock:
            return [dict(charge) for charge in self._charges]

    def charges_for(self, idempotency_key: str) -> list[dict[str, Any]]:
        """The charges recorded for one idempotency key: never more than one."""
        return [c for c in self.charges if c["idempotency_key"] == idempotency_key]

    @property
    def requests(self) -> int:
        """How many requests reached the server, whatever their path."""
        with self._lock:
            return len(self._received)

    @property
    def received(self) -> list[ReceivedRequest]:
        """Every request that reached the server, oldest first (a copy)."""
        with self._lock:
            return list(self._received)

    # --- called by the handler threads -------------------------------------------------------

    def _receive(self, request: ReceivedRequest) -> tuple[int | None, str | None, threading.Event]:
        """Record the request; the refusal (a status) or the fault it meets, if any."""
        with self._lock:
            self._received.append(request)
            refusal = fault = None
            if request.method == "POST" and _operation(request.path) is not None:
                if (
                    self.api_key is not None
                    and request.headers.get("authorization") != f"Bearer {self.api_key}"
                ):
                    refusal = 401
                elif self._refusals:
                    refusal = self._refusals.popleft()
                elif self._faults:
                    fault = self._faults.popleft()
            return refusal, fault, self._stopping

    def _void(self, key: str) -> tuple[int, dict[str, Any]]:
        """Void the key (refunding its captured charge), or answer the first void again."""
        with self._lock:
            if key not in self._voided:
                stored = self._answers.get(key)
                refunded = stored.body.get("id") if stored and stored.status == 201 else None
                self._voided[key] = refunded
                self._voids.append({"idempotency_key": key, "refunded_charge_id": refunded})
            return 200, {"status": "voided", "refunded_charge_id": self._voided[key]}

    def _charge(self, key: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer from the idempotency store, or decide and store the answer: atomically."""
        with self._lock:
            if key in self._voided:
                return 402, {"status": "declined", "reason": "key_voided"}
            stored = self._answers.get(key)
            if stored is not None:
                if stored.request != request:
                    return 422, {
                        "code": "idempotency_key_reused",
                        "detail": "this Idempotency-Key was used with a different request",
                    }
                return stored.status, stored.body
            if request["payment_method"].startswith("pm_decline"):
                answer = _Answer(request, 402, {"status": "declined", "reason": "card_declined"})
            else:
                charge = {"id": f"ch_{len(self._charges) + 1}", "idempotency_key": key, **request}
                self._charges.append(charge)
                answer = _Answer(request, 201, {"id": charge["id"], "status": "succeeded"})
            self._answers[key] = answer
            return answer.status, answer.body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Do not wait for handlers on close: one may be holding a "timeout_after_charge" answer.
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: PaymentsServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has hung up before its late answer: expected, not an error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so a stopped server cannot keep answering on a
    # kept-alive connection and a connection refused really means the server is down.
    protocol_version = "HTTP/1.0"
    server: _Server

    def do_GET(self) -> None:
        owner = self.server.owner
        owner._receive(self._request())
        if urlsplit(self.path).path == "/charges":
            self._send(200, {"charges": owner.charges})
        else:
            self._send(404, {"code": "not_found"})

    def do_POST(self) -> None:
        owner = self.server.owner
        request = self._request()
        refusal, fault, stopping = owner._receive(request)
        operation = _operation(request.path)
        if operation is None:
            return self._send(404, {"code": "not_found"})
        if refusal is not None:
            code = "unauthorized" if refusal == 401 else f"refused_{refusal}"
            return self._send(refusal, {"code": code})
        if fault == "error_before_charge":
            return self._send(503, {"code": "unavailable"})
        if fault == "rate_limited":
            return self._send(429, {"code": "rate_limited"}, {"Retry-After": owner.retry_after})
        if fault == "bad_request":
            return self._send(400, {"code": "invalid_request"})
        if fault == "malformed":
            return self._send_raw(200, b"<html>upstream proxy says hello</html>", "text/html")
        if operation[0] == "void":
            status, body = owner._void(operation[1])
            return self._finish(status, body, fault, stopping)
        key = request.headers.get("idempotency-key", "")
        if not key:
            return self._send(400, {"code": "idempotency_key_required"})
        charge = _parse_charge(request.body)
        if charge is None:
            return self._send(400, {"code": "invalid_request"})
        status, body = owner._charge(key, charge)
        return self._finish(status, body, fault, stopping)

    def _finish(
        self, status: int, body: dict[str, Any], fault: str | None, stopping: threading.Event
    ) -> None:
        """Send the answer of a charge or void that took effect, as the fault wants it."""
        if fault == "error_after_charge":
            return self._send(500, {"code": "internal_error"})
        if fault == "timeout_after_charge":
            stopping.wait(self.server.owner.hang_seconds)
        return self._send(status, body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on ``server.received`` instead."""

    def _request(self) -> ReceivedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        return ReceivedRequest(
            method=self.command,
            path=urlsplit(self.path).path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self._send_raw(status, json.dumps(body).encode(), "application/json", headers)

    def _send_raw(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except ConnectionError:
            pass  # the client gave up waiting (a timeout it was meant to hit)


def _operation(path: str) -> tuple[str, str] | None:
    """``("charge", "")`` for /charges, ``("void", key)`` for /charges/{key}/void, else None."""
    if path == "/charges":
        return "charge", ""
    parts = path.split("/")
    if len(parts) == 4 and parts[:2] == ["", "charges"] and parts[3] == "void" and parts[2]:
        return "void", unquote(parts[2])
    return None


def _parse_charge(raw: bytes) -> dict[str, Any] | None:
    """The charge request's fields, or None when the body does not follow the contract."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict) or set(body) != set(CHARGE_FIELDS):
        return None
    amount = body["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        return None
    if not all(isinstance(body[f], str) for f in ("payment_method", "currency", "description")):
        return None
    return body


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args(argv)
    with PaymentsServer(args.host, args.port) as server:
        print(f"payments server listening on {server.url} (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
