"""SPEC §9, "states with deadlines and roles": the plan summary tells each user who they are,
who may pay, and when an unpaid plan will be canceled, so a page never learns it from a 403."""

from __future__ import annotations

from tests.conftest import Api
from tests.renewals.test_past_due import past_due

ALICE = {"user_id": "alice", "name": "Alice"}


async def test_summary_names_the_caller_their_role_and_seat(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    carol = await api.summary(user="carol")
    assert carol["caller"] == {"user_id": "carol", "name": "Carol", "role": "user", "agent": True}
    bob = await api.summary(user="bob")
    assert bob["caller"] == {"user_id": "bob", "name": "Bob", "role": "admin", "agent": False}
    alice = await api.summary(user="alice")
    assert alice["caller"] == {**ALICE, "role": "primary_admin", "agent": False}


async def test_summary_names_the_primary_admin_to_every_user(api: Api) -> None:
    for user in ("alice", "bob", "carol"):
        assert (await api.summary(user=user))["primary_admin"] == ALICE
    # A new primary admin is named as soon as the platform says so.
    assert (await api.put_user("acme", "bob", "primary_admin")).status_code == 200
    assert (await api.summary(user="carol"))["primary_admin"] == {"user_id": "bob", "name": "Bob"}


async def test_summary_for_a_service_names_nobody(api: Api) -> None:
    r = await api.client.get(api.url("acme"), headers=api.as_service())
    assert r.status_code == 200, r.text
    assert (r.json()["caller"], r.json()["primary_admin"]) == (None, None)


async def test_past_due_summary_says_when_the_plan_will_be_canceled(api: Api) -> None:
    await past_due(api)  # first declined on 2026-12-01; SEATS_DUNNING_DAYS is 14
    outstanding = (await api.summary())["outstanding_invoice"]
    assert outstanding["cancels_at"] == "2026-12-15T00:00:00Z"


async def test_summary_offers_the_trial_seats_and_shows_admins_the_payment_method(
    api: Api,
) -> None:
    summary = await api.summary(user="alice")
    assert (summary["status"], summary["trial_seats"]) == ("none", 20)
    assert summary["payment_method"] == "pm_card_visa"
    assert (await api.summary(user="bob"))["payment_method"] == "pm_card_visa"
    assert (await api.summary(user="carol"))["payment_method"] is None
