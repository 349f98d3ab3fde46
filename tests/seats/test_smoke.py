from tests.conftest import Api


async def test_trial_then_purchase_spec_example(api: Api) -> None:
    r = await api.start_trial()
    assert r.status_code == 201, r.text
    r = await api.buy(5)
    assert r.status_code == 201, r.text
    assert r.json()["invoice"]["total"] == 3167
