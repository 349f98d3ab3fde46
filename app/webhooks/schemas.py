"""Bodies of the webhook endpoints API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

EventType = Annotated[
    str, StringConstraints(min_length=3, max_length=60, pattern=r"^[a-z_]+(\.[a-z_]+)+$")
]
# No control characters: PostgreSQL cannot store NUL, and a URL has no spaces.
Url = Annotated[
    str, StringConstraints(min_length=8, max_length=2000, pattern=r"^[^\x00-\x20\x7f]+$")
]
Description = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=50)]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url = Field(examples=["https://billing-hooks.example.com/seats"])
    event_types: EventTypes | None = Field(
        default=None,
        description="The event types to receive; omitted or null: every type.",
        examples=[["seats.purchased", "plan.past_due"]],
    )
    description: Description = ""


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = Field(default=None, description="null: every type.")
    description: Description | None = None
    disabled: bool | None = Field(
        default=None,
        description="false re-enables; the failure count starts again.",
        examples=[False],
    )


class WebhookEndpoint(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["whe_01jd9a8m4c5t6v7w8x9y0z1a2b"])
    url: str
    description: str
    event_types: list[str] | None
    disabled: bool
    disabled_reason: str | None = Field(description="manual, gone (410) or failing (5 days)")
    created_at: datetime
    updated_at: datetime


class WebhookEndpointSecret(WebhookEndpoint):
    """An endpoint with its signing secret: answered only on creation and rotation."""

    secret: str = Field(examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])


class WebhookAttempt(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event_id: str
    attempt: int
    status_code: int | None = Field(description="The answer's status; null: no answer")
    error: str | None
    at: datetime
    next_attempt_at: datetime | None = Field(description="null: no further attempt")


class Redelivery(BaseModel):
    event_id: str
    queued: int = Field(description="Deliveries queued, one per subscribed enabled endpoint")
