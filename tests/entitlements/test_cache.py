"""The worker's cache of agent checks, on its own (app/entitlements.py): what it refuses to
store and to serve. The listener and the triggers are tested on PostgreSQL beside this."""

from __future__ import annotations

from app.entitlements import EVERYTHING, EntitlementCache, listener_connect_args


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def listening_cache(**kwargs: float) -> tuple[EntitlementCache, Ticks]:
    ticks = Ticks()
    values = {"ttl": 5.0, "max_entries": 1000, **kwargs}
    cache = EntitlementCache(ttl=values["ttl"], max_entries=int(values["max_entries"]), clock=ticks)
    cache.listening()
    return cache, ticks


def test_an_answer_stored_is_served() -> None:
    cache, _ = listening_cache()
    cache.put("acme", "bob", "answer", cache.token("acme"))
    assert cache.get("acme", "bob") == "answer"
    assert cache.get("acme", "carol") is None and cache.get("globex", "bob") is None


def test_a_read_that_raced_an_invalidation_is_never_stored() -> None:
    cache, _ = listening_cache()
    token = cache.token("acme")  # the read starts ...
    cache.invalidate("acme")  # ... a change to the account is announced while it runs ...
    cache.put("acme", "bob", "stale", token)  # ... and its answer comes back
    assert cache.get("acme", "bob") is None
    # A change to another account does not stop it.
    token = cache.token("acme")
    cache.invalidate("globex")
    cache.put("acme", "bob", "fresh", token)
    assert cache.get("acme", "bob") == "fresh"


def test_a_flush_stops_every_read_in_flight_from_being_stored() -> None:
    cache, _ = listening_cache()
    acme, globex, epoch = cache.token("acme"), cache.token("globex"), cache.token("acme")[0]
    cache.invalidate(EVERYTHING)  # the test clock was set: every account reads it
    cache.put("acme", "bob", "stale", acme)
    cache.put("globex", "bob", "stale", globex)
    cache.put_shared("stale clock", epoch)
    assert cache.get("acme", "bob") is None and cache.get("globex", "bob") is None
    assert cache.get_shared() == (False, None)


def test_an_invalidation_drops_the_accounts_answers_only() -> None:
    cache, _ = listening_cache()
    for account in ("acme", "globex"):
        for user in ("bob", "carol"):
            cache.put(account, user, f"{account}/{user}", cache.token(account))
    cache.invalidate("acme")
    assert cache.get("acme", "bob") is None and cache.get("acme", "carol") is None
    assert cache.get("globex", "bob") == "globex/bob" and len(cache) == 2


def test_nothing_is_stored_until_the_listener_listens_nor_after_it_stopped() -> None:
    cache = EntitlementCache(ttl=5, max_entries=10)
    cache.put("acme", "bob", "answer", cache.token("acme"))
    assert cache.get("acme", "bob") is None  # not listening yet: changes would go unheard
    cache.listening()
    token = cache.token("acme")
    cache.put("acme", "bob", "answer", token)
    assert cache.get("acme", "bob") == "answer"
    cache.deaf()  # the connection dropped: what it would have announced is lost
    assert cache.get("acme", "bob") is None and len(cache) == 0
    cache.put("acme", "bob", "answer", cache.token("acme"))
    assert cache.get("acme", "bob") is None


def test_listening_again_flushes_and_stops_reads_that_started_deaf() -> None:
    cache, _ = listening_cache()
    cache.put("acme", "bob", "answer", cache.token("acme"))
    cache.deaf()
    token = cache.token("acme")  # a read starts while nothing listens
    cache.listening()
    cache.put("acme", "bob", "maybe stale", token)
    assert cache.get("acme", "bob") is None


def test_an_answer_is_served_for_the_ttl_at_most() -> None:
    cache, ticks = listening_cache(ttl=5.0)
    cache.put("acme", "bob", "answer", cache.token("acme"))
    cache.put_shared("clock", cache.token("acme")[0])
    ticks.now += 4.99
    assert cache.get("acme", "bob") == "answer" and cache.get_shared() == (True, "clock")
    ticks.now += 0.01
    assert cache.get("acme", "bob") is None and cache.get_shared() == (False, None)


def test_the_oldest_account_goes_when_the_cache_is_full() -> None:
    cache, _ = listening_cache(max_entries=3)
    for account in ("a1", "a2", "a3"):
        cache.put(account, "bob", account, cache.token(account))
    cache.put("a3", "bob", "a3 again", cache.token("a3"))  # a key it holds: nothing goes
    assert len(cache) == 3 and cache.get("a1", "bob") == "a1"
    cache.put("a3", "carol", "a3/carol", cache.token("a3"))
    assert cache.get("a1", "bob") is None and len(cache) == 3
    cache.put("a4", "bob", "a4", cache.token("a4"))
    assert cache.get("a2", "bob") is None and len(cache) == 3
    assert [cache.get("a3", "bob"), cache.get("a3", "carol"), cache.get("a4", "bob")] == [
        "a3 again",
        "a3/carol",
        "a4",
    ]


def test_what_it_remembers_of_changes_is_bounded_too() -> None:
    cache, _ = listening_cache(max_entries=3)
    cache.put("a0", "bob", "a0", cache.token("a0"))
    in_flight = cache.token("a1")
    for account in ("a1", "a2", "a3"):
        cache.invalidate(account)
    cache.invalidate("a4")  # a fourth account changed: everything goes, as in a flush
    assert cache.get("a0", "bob") is None and len(cache) == 0
    cache.put("a1", "bob", "stale", in_flight)  # a read from before is still refused
    assert cache.get("a1", "bob") is None


def test_the_listener_connects_with_the_services_own_url() -> None:
    url = "postgresql+asyncpg://seats:s%40cret@db.internal:5433/seats?ssl=require"
    assert listener_connect_args(url) == {
        "user": "seats",
        "password": "s@cret",
        "host": "db.internal",
        "port": 5433,
        "database": "seats",
        "ssl": "require",
    }


def test_the_listener_keeps_every_host_of_a_failover_url_in_order() -> None:
    url = (
        "postgresql+asyncpg://seats@/seats?host=db-a:5432&host=db-b:5433"
        "&target_session_attrs=read-write"
    )
    args = listener_connect_args(url)
    assert (args["host"], args["port"]) == (["db-a", "db-b"], [5432, 5433])
    assert args["target_session_attrs"] == "read-write"
