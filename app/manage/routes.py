"""``GET /manage`` and its static files: a reference page for the platform's front end.

The page is plain HTML, CSS and JavaScript modules shipped in the package (no CDN, no build
step). It calls only the public API, with the token it reads from the URL fragment.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC = Path(__file__).resolve().parent / "static"

# Only the service's own origin: no inline script or style, no other host for anything, and
# no framing (the page holds a token that can buy seats).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The token is in the fragment, which is never sent; this keeps the path out of other
    # sites' logs too.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

router = APIRouter(include_in_schema=False)


@router.get("/manage")
async def manage_page() -> FileResponse:
    """The Manage Seats page."""
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=SECURITY_HEADERS)


class _StaticWithHeaders(StaticFiles):
    """The page's modules and stylesheet, with the same security headers as the page."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_RAW_HEADERS]
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Serve the page at ``/manage`` and its files under ``/manage/static``."""
    app.include_router(router)
    app.mount("/manage/static", _StaticWithHeaders(directory=str(STATIC)), name="manage-static")
