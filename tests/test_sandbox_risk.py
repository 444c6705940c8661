"""The sandbox's Anti-Content: each policy level accepts the script's token and refuses exactly what it forbids;
a business call that fails its route's policy meets 54001 with a verifyAuthToken; a new build moves the SDK."""

from __future__ import annotations

import random

import pytest

from agent.sandbox.risk import LEVELS, RiskPolicy, mint, module_names, script
from tests.conftest import Sandbox

QL = "/mercury/mms/afterSales/queryList"
T = 1_796_650_000_000
GOOD = {"server_ms": T + 2_000, "ua": "Mozilla/5.0 shop-A", "fp": "fpA", "rckk": "rkA"}


def verdict(level: str, token: str, **changed: object) -> str:
    policy = RiskPolicy(default=level, fresh_seconds=30)
    got = policy.check("/x", token, build="b1", rng=random.Random(0), **{**GOOD, **changed})  # type: ignore[arg-type]
    return "ok" if got.ok else got.reason


@pytest.mark.parametrize(("level", "changed", "refused"), [
    ("present", {}, None),
    ("valid", {"token": mint("b2", T, "Mozilla/5.0 shop-A", "fpA", "rkA", "n")}, "invalid signature"),
    ("valid", {"token": "0as" + "x" * 40}, "not a token"),
    ("fresh", {"server_ms": T + 31_000}, "stale"),
    ("ua", {"ua": "Mozilla/5.0 shop-B"}, "another user agent"),
    ("fingerprint", {"fp": "fpB"}, "another fingerprint"),
    ("account", {"rckk": "rkB"}, "another account"),
], ids=["present", "another-build", "garbage", "stale", "user-agent", "fingerprint", "account"])
def test_each_level_refuses_what_it_forbids(level: str, changed: dict[str, object], refused: str | None) -> None:
    good = mint("b1", T, "Mozilla/5.0 shop-A", "fpA", "rkA", "n1")
    assert verdict(level, good) == "ok"  # the script's own value passes every level
    bad = str(changed.pop("token", good))
    if refused:
        assert refused in verdict(level, bad, **changed)
        lower = LEVELS[LEVELS.index(level) - 1]  # the level below does not ask for it
        if bad == good and lower not in ("none", "present"):
            assert verdict(lower, bad, **changed) == "ok"
    assert "no Anti-Content" in verdict(level, "")


def test_single_use_and_the_risk_score() -> None:
    token = mint("b1", T, "Mozilla/5.0 shop-A", "fpA", "rkA", "n2")
    policy = RiskPolicy(default="single")
    args = dict(build="b1", rng=random.Random(0), **GOOD)
    assert policy.check("/x", token, **args).ok  # type: ignore[arg-type]
    assert policy.check("/x", token, **args).reason == "used before"  # type: ignore[arg-type]
    scored = RiskPolicy(default="valid", score=0.5)
    results = [scored.check("/x", token, **args).ok for _ in range(200)]  # type: ignore[arg-type]
    assert 60 < sum(results) < 140  # about half of the valid tokens still meet 54001


def test_a_new_build_moves_the_module_and_its_names() -> None:
    a, b = module_names("3QqLW"), module_names("9ZzK1")
    assert a["module"] != b["module"] and a["klass"] != b["klass"]
    assert f'"{a["module"]}"' in script("3QqLW") and f'"{a["module"]}"' not in script("9ZzK1")
    assert "messagePack" in script("9ZzK1")  # what the page's request library calls stays


def test_a_call_failing_its_routes_policy_meets_54001_with_a_verify_token(sandbox: Sandbox) -> None:
    c = sandbox.login_http("示例旗舰店")
    assert c.post(QL, json={"pageNumber": 1, "pageSize": 10}).json()["success"]  # default: nothing demanded
    sandbox.control.risk(levels={QL: "account"}, fresh_seconds=30)
    answer = c.post(QL, json={"pageNumber": 1, "pageSize": 10}).json()  # cookie-only
    assert answer["errorCode"] == 54001 and answer["result"]["verifyAuthToken"]
    cookies, now = dict(c.cookies), int(sandbox.control.clock()["now"] * 1000)
    token = mint(sandbox.control.settings()["build"], now, "python-httpx", cookies["_nano_fp"], cookies["rckk"], "z9")
    signed = c.post(QL, json={"pageNumber": 1, "pageSize": 10},
                    headers={"Anti-Content": token, "User-Agent": "python-httpx"}).json()
    assert signed["success"], signed  # a value minted as the script does passes
    again = c.post(QL, json={"pageNumber": 1, "pageSize": 10},
                   headers={"Anti-Content": token, "User-Agent": "python-httpx"}).json()
    assert again["errorCode"] == 54001  # never twice
    assert sandbox.control.stats()["counts"]["risk:used before"] == 1
    assert c.get("/api/server/_stm").json()["server_time"] == pytest.approx(now, abs=5_000)


def test_live_headers_ask_mercury_calls_for_the_etag_the_live_callers_send(sandbox: Sandbox) -> None:
    c = sandbox.login_http("示例旗舰店")
    sandbox.control.risk(live_headers=True)
    answer = c.post(QL, json={"pageNumber": 1, "pageSize": 10}).json()
    assert answer["errorCode"] == 54001
    ok = c.post(QL, json={"pageNumber": 1, "pageSize": 10}, headers={"etag": dict(c.cookies)["rckk"]}).json()
    assert ok["success"], ok
    assert sandbox.control.stats()["counts"]["risk:no etag"] == 1
