"""The reminders the billing run has sent (R16): one row per plan, kind and due date."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.sqltypes import UTCDateTime


class Reminder(Base):
    """``trial.ending`` or ``renewal.upcoming``, sent once for the trial or renewal of
    ``due_on``: the primary key is what makes it once, however many runs overlap (a second
    run's insert conflicts and it writes no event). Rows are only ever added."""

    __tablename__ = "reminder"

    account_id: Mapped[str] = mapped_column(String(64), ForeignKey("account.id"), primary_key=True)
    type: Mapped[str] = mapped_column(String(40), primary_key=True)
    # The trial's end date, or the renewal's date (the paid period's end).
    due_on: Mapped[date] = mapped_column(Date, primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
