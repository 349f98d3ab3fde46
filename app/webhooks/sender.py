"""One signed send of a webhook over HTTP (Standard Webhooks headers, httpx)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from app.errors import WebhookUrlRefused
from app.webhooks.urls import pinned_request, resolve

log = logging.getLogger("app.webhooks")

USER_AGENT = "conversations-seats-webhooks/1"
MAX_ANSWER_BYTES = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Reply:
    """What came back: a status code, or no answer and why."""

    status_code: int | None
    error: str | None = None


def failure(reason: str) -> Reply:
    """No answer, and why: one printable line of at most 200 characters, so that recording
    it can never fail (PostgreSQL text cannot hold NUL)."""
    return Reply(None, _CONTROL.sub(" ", reason)[:200])


def signature_header(secrets: list[str], msg_id: str, at: datetime, body: str) -> str:
    """``v1,<sig>`` per secret, space-separated (two during a secret's rotation)."""
    return " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets)


class Sender:
    """Sends with one shared httpx client; never follows redirects (they could point inward)."""

    def __init__(self, allow: Collection[str], timeout: float, max_connections: int) -> None:
        self.allow = allow
        self.timeout = timeout
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections),
            headers={"User-Agent": USER_AGENT},
        )

    async def send(self, url: str, secrets: list[str], event_id: str, body: str) -> Reply:
        """Resolve and vet the address, sign with the wall-clock time, POST; never raises.

        Whatever goes wrong is an answer, so that the worker records a failed attempt and
        retries on the schedule: an exception out of here would leave the delivery due, and
        the worker would try it again at once, forever, holding back the endpoint's queue.
        """
        try:
            return await self._send(url, secrets, event_id, body)
        except Exception as exc:
            log.warning("webhook send to %s failed unexpectedly", url, exc_info=True)
            return failure(f"error: {exc.__class__.__name__}: {exc}")

    async def _send(self, url: str, secrets: list[str], event_id: str, body: str) -> Reply:
        try:
            target = await resolve(url, self.allow)
        except WebhookUrlRefused as exc:
            return failure(f"refused: {exc.detail}")
        # Wall-clock time even under the test clock: receivers check it against their own.
        sent_at = datetime.now(UTC)
        pinned, extra_headers, extensions = pinned_request(target)
        headers = {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature_header(secrets, event_id, sent_at, body),
            **extra_headers,
        }
        try:
            # httpx's timeout is per phase (connect, write, read); this bounds the whole send.
            async with asyncio.timeout(self.timeout):
                request = self.client.build_request(
                    "POST", pinned, content=body.encode(), headers=headers, extensions=extensions
                )
                response = await self.client.send(request, stream=True)
                try:
                    # Only the status counts. A short body is read to its end, so that the
                    # connection goes back to the pool; a long one is cut off.
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read > MAX_ANSWER_BYTES:
                            break
                finally:
                    await response.aclose()
        except TimeoutError:
            return failure("timeout")
        except httpx.HTTPError as exc:
            return failure(f"{exc.__class__.__name__}: {exc}")
        return Reply(response.status_code)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
