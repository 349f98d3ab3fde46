"""Every ORM model, imported in one place for Alembic and the tests."""

from __future__ import annotations

import app.billing_run.models
import app.clock
import app.directory.models
import app.idempotency
import app.ledger.models
import app.seats.models
import app.webhooks.models  # noqa: F401


def import_all() -> None:
    """Nothing left to do: importing this module registered every table on the metadata."""
