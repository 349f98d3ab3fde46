"""The positions a standby must have replayed (app/positions.py): pure bookkeeping."""

from __future__ import annotations

from app.positions import UNREACHABLE, Positions, format_lsn, parse_lsn
from app.read_positions import asked_position


def test_an_lsn_orders_as_postgresql_orders_it() -> None:
    assert parse_lsn("0/FFFFFFFF") < parse_lsn("1/0") < parse_lsn("1/10")
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"


def test_no_standby_answers_until_the_listener_listens_nor_after_it_stops() -> None:
    positions = Positions()
    assert positions.needed("acme") == UNREACHABLE
    positions.listening(positions.batch(), 100)
    assert positions.needed("acme") == 100
    positions.deaf()
    assert positions.needed("acme") == UNREACHABLE


def test_a_notified_account_waits_for_its_position_and_only_its_batch_gets_it() -> None:
    positions = Positions()
    positions.listening(positions.batch(), 100)
    positions.notified("acme")
    assert positions.needed("acme") == UNREACHABLE  # pending: the primary answers
    assert positions.needed("globex") == 100
    batch = positions.batch()
    positions.notified("globex")  # arrived after the query was sent: not covered by it
    positions.positioned(batch, 200)
    assert positions.needed("acme") == 200
    assert positions.needed("globex") == UNREACHABLE
    positions.positioned(positions.batch(), 300)
    assert positions.needed("globex") == 300
    assert not positions.has_pending


def test_a_change_to_every_account_raises_the_floor() -> None:
    positions = Positions()
    positions.listening(positions.batch(), 100)
    positions.notified("*")
    assert positions.needed("acme") == UNREACHABLE
    positions.positioned(positions.batch(), 250)
    assert positions.needed("acme") == 250


def test_writes_raise_their_account_and_the_bound_keeps_the_highest() -> None:
    positions = Positions(max_accounts=2)
    positions.listening(positions.batch(), 100)
    positions.wrote("a", 150)
    positions.wrote("b", 300)
    positions.wrote("a", 120)  # never lowered
    assert positions.needed("a") == 150
    positions.wrote("c", 200)  # a third account: the highest becomes everyone's floor
    assert positions.needed("a") == 300
    assert positions.needed("c") == 300


def test_a_read_asks_for_the_highest_position_it_carries_and_the_primary_for_garbage() -> None:
    assert asked_position(None, None) == 0
    assert asked_position("0/20", "seats_read_position=0/30; other=1") == 0x30
    assert asked_position("not a position", None) == UNREACHABLE
