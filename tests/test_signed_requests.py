"""SignedRequests and SigningMemory without a browser: a token per request with the shop's own cookies; a signer
that cannot mint raises (the ladder's next tier), or, for a page-mode check's follow-ups, the request goes unsigned
as before; the memory of signed hosts expires."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from agent.browser.reader import Answer
from agent.browser.signer import SignedRequests, SignerError, SigningMemory
from tests.conftest import run_async

RULES = {"header": "Anti-Content", "fingerprint_cookie": "_nano_fp", "account_cookie": "rckk"}


class Http:
    """A Requester that records what it sends."""

    gates_budget = True

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    async def cookie(self, name: str, url: str) -> str:
        return {"_nano_fp": "fp-A", "rckk": "rk-A"}.get(name, "")

    async def send(self, method: str, url: str, body: Mapping[str, Any] | None, headers: Mapping[str, str],
                   timeout: float) -> Answer:
        self.sent.append(dict(headers))
        return Answer(200, {}, b"{}")


class Minting:
    """A signer stand-in: numbered tokens from the cookies it is given, or SignerError when `broken`."""

    rules = RULES

    def __init__(self, broken: bool = False) -> None:
        self.broken, self.seen, self.n = broken, [], 0

    async def mint(self, cookies: Mapping[str, str]) -> str:
        if self.broken:
            raise SignerError("no module with 'messagePack'")
        self.seen.append(dict(cookies))
        self.n += 1
        return f"tok{self.n}"


def send(requests: SignedRequests) -> Answer:
    return run_async(requests.send("POST", "http://mms.test/x", {}, {"Referer": "r"}, 5))


def test_each_request_gets_its_own_token_minted_with_the_shops_cookies() -> None:
    http, signer = Http(), Minting()
    requests = SignedRequests(http, signer)  # type: ignore[arg-type]
    send(requests)
    send(requests)
    assert [h["Anti-Content"] for h in http.sent] == ["tok1", "tok2"]
    assert signer.seen == [{"_nano_fp": "fp-A", "rckk": "rk-A"}] * 2
    assert requests.gates_budget and all(h["Referer"] == "r" for h in http.sent)


def test_no_token_raises_unless_the_follow_ups_may_go_unsigned() -> None:
    http = Http()
    with pytest.raises(SignerError):
        send(SignedRequests(http, Minting(broken=True)))  # type: ignore[arg-type]
    assert http.sent == []  # nothing sent unsigned behind the ladder's back
    send(SignedRequests(http, Minting(broken=True), unsigned_if_no_token=True))  # type: ignore[arg-type]
    assert http.sent == [{"Referer": "r"}]


def test_signing_memory_expires() -> None:
    now = [1000.0]
    memory = SigningMemory(60, clock=lambda: now[0])
    memory.remember("mms.test")
    assert memory.signed("mms.test") and memory.hosts() == {"mms.test": 1060.0}
    now[0] = 1061.0
    assert not memory.signed("mms.test") and memory.hosts() == {}
    off = SigningMemory(0)
    off.remember("mms.test")
    assert not off.signed("mms.test")
