"""Measured: httptools parses a request several times faster than h11 (C, not Python).

The HTTP/1.1 protocol the service serves with: uvicorn's httptools one, bounded like h11.
It subclasses uvicorn's internal ``HttpToolsProtocol`` (pinned in ``LEANS_ON``). uvicorn's
protocol keeps whatever arrives before the end of the headers, without a limit, where h11
refuses an incomplete request line and headers past ``h11_max_incomplete_event_size``
(SEATS_MAX_HEADER_BYTES). This protocol counts the bytes received while a request's headers
are incomplete, and refuses the request with a 400 once they pass the same limit, as h11 does.
Memory per connection stays bounded by the limit plus one read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

# The versions this was measured and tested with (tests/test_fast_paths.py): a uvicorn past them
# may have changed the internal protocol this subclasses.
LEANS_ON = {"uvicorn": ("0.54", "0.56"), "httptools": ("0.9", "0.10")}

# h11's own default, when the config names none.
DEFAULT_LIMIT = 16 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.head_limit = config.h11_max_incomplete_event_size or DEFAULT_LIMIT
        self.head_bytes = 0
        self.in_head = True

    # Reset when a request ends, not when the next begins: the parser calls
    # ``on_message_begin`` from inside ``data_received``, after this read was counted.
    def on_headers_complete(self) -> None:
        self.in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.in_head, self.head_bytes = True, 0
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            self.head_bytes += len(data)
        super().data_received(data)
        # Checked once the parser has seen the data: a read that ends the headers may carry
        # body bytes too, and those count against the body's own limit, not this one.
        if self.in_head and self.head_bytes > self.head_limit and not self.transport.is_closing():
            self.send_400_response("Request line and headers too large.")
