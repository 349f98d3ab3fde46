"""Ids the service makes: a prefix and a time-ordered random part (a monotonic ULID)."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lower case
_lock = threading.Lock()
_last = 0


def new_id(prefix: str) -> str:
    """``prefix_`` + 26 base32 characters: 48 bits of milliseconds, 80 random bits.

    Within one process ids only grow, even within a millisecond, so lists ordered by
    (time, id) show rows made at the same instant (a frozen test clock) in creation order.
    """
    global _last
    with _lock:
        value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
        if value <= _last:
            value = _last + 1
        _last = value
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"
