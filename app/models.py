"""Every ORM model, imported in one place for Alembic and the tests."""

from __future__ import annotations


def import_all() -> None:
    import app.clock
    import app.directory.models
    import app.idempotency
    import app.ledger.models
    import app.seats.models
    import app.webhooks.models  # noqa: F401
