import pytest

pytestmark = pytest.mark.anyio


async def test_loop(harness):
    agent = harness.agent()
    _reg, token = await agent.start()
    r = await agent.api("POST", "/notes", token, json={"text": "hi"})
    assert r.status_code == 201
    r = await agent.api("GET", "/notes", token)
    assert r.json()["count"] == 1
