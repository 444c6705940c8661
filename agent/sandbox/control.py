"""A small synchronous client for the sandbox control API, for tests, the demo and benchmarks."""

from __future__ import annotations

import base64
from typing import Any

import httpx


class SandboxError(RuntimeError):
    """The control API refused a call; the message is the sandbox's own."""


def http_login(client: httpx.Client, username: str, password: str, **extra: Any) -> dict[str, Any]:
    """POST /janus/api/auth as the sandbox's login page does: queryPasswordEncrypt first, then the password
    encoded with it (the sandbox's stand-in for PDD's RSA: base64 of "<passwordEncrypt>:<password>")."""
    nonce = client.get("/janus/api/queryPasswordEncrypt").json()["result"]["passwordEncrypt"]
    encoded = base64.b64encode(f"{nonce}:{password}".encode()).decode()
    body = {"username": username, "password": encoded, "passwordEncrypt": nonce, **extra}
    return dict(client.post("/janus/api/auth", json=body).json())


class SandboxControl:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url + "/__sandbox/", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandboxControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        resp = self._http.request(method, path, json=body, params=params or None)
        data = resp.json()
        if resp.status_code != 200:
            raise SandboxError(data.get("error", resp.text))
        return data

    # scenario and settings
    def state(self) -> dict[str, Any]:
        return dict(self._call("GET", "state"))

    def load(self, scenario: dict[str, Any] | str) -> dict[str, Any]:
        """Load a scenario dict, or a built-in one by name ("demo", "big_shop", "logins")."""
        body = {"builtin": scenario} if isinstance(scenario, str) else scenario
        return dict(self._call("POST", "scenario", body))

    def settings(self, **settings: Any) -> dict[str, Any]:
        return dict(self._call("POST", "settings", settings))

    # clock
    def clock(self) -> dict[str, Any]:
        return dict(self._call("GET", "clock"))

    def advance(self, seconds: float) -> dict[str, Any]:
        return dict(self._call("POST", "clock", {"advance": seconds}))

    def set_clock(self, **kw: Any) -> dict[str, Any]:
        """Any of set=<epoch>, offset=<s>, advance=<s>, rate=<x>, freeze=<bool>."""
        return dict(self._call("POST", "clock", kw))

    # items
    def items(self, mall_id: int) -> list[dict[str, Any]]:
        return list(self._call("GET", "items", mall_id=mall_id)["items"])

    def add_items(self, mall_id: int, items: list[dict[str, Any]], after: str | None = None) -> list[int]:
        """New items now, or with `after="queryCount"` right after the shop's next queryCount answer."""
        body: dict[str, Any] = {"mall_id": mall_id, "items": items}
        if after:
            body["after"] = after
        return list(self._call("POST", "items", body)["added"])

    def handle(self, item_id: int) -> dict[str, Any]:
        return dict(self._call("POST", "items/handle", {"id": item_id}))

    def age(self, item_id: int, seconds: float) -> dict[str, Any]:
        return dict(self._call("POST", "items/age", {"id": item_id, "seconds": seconds}))

    def mark(self, item_id: int, **flags: Any) -> dict[str, Any]:
        """complaint_risk=, buyer_urged= (the 投诉预警 / 买家催处理 cards), reason=."""
        return dict(self._call("POST", "items/mark", {"id": item_id, **flags}))

    def escalate(self, item_id: int, proof_deadline_in: float | None = None) -> dict[str, Any]:
        """The platform steps in (平台处理中); evidence owed within `proof_deadline_in` s when given."""
        body: dict[str, Any] = {"id": item_id}
        if proof_deadline_in is not None:
            body["proof_deadline_in"] = proof_deadline_in
        return dict(self._call("POST", "items/escalate", body))

    def platform_refund(self, item_id: int) -> dict[str, Any]:
        """The platform decides for the buyer: the item it handles is refunded."""
        return dict(self._call("POST", "items/escalate", {"id": item_id, "decide": "refund"}))

    def set_tickets(self, mall_id: int, count: int) -> dict[str, Any]:
        """「24小时内将逾期工单数」 of the shop."""
        return dict(self._call("POST", "tickets", {"mall_id": mall_id, "count": count}))

    # sessions and login hurdles
    def expire_sessions(self, mall_id: int | None = None, username: str | None = None) -> int:
        body: dict[str, Any] = {}
        if mall_id is not None:
            body["mall_id"] = mall_id
        if username is not None:
            body["username"] = username
        return int(self._call("POST", "sessions/expire", body)["expired"])

    def arm_sms(self, username: str) -> None:
        self._call("POST", "arm", {"what": "sms", "username": username})

    def arm_captcha(self, username: str | None = None) -> None:
        self._call("POST", "arm", {"what": "captcha", "username": username})

    def clear_captcha(self) -> None:
        self._call("POST", "captcha/clear", {})

    def arm_picture_captcha(self, username: str | None = None) -> None:
        self._call("POST", "arm", {"what": "picture_captcha", "username": username})

    def arm_api_captcha(self, username: str | None = None, unsigned_only: bool = False) -> None:
        """Business APIs answer 54001 with result.verifyAuthToken until a human passes the captcha
        (`unsigned_only`: only requests without the page's Anti-Content header)."""
        self._call("POST", "arm", {"what": "api_captcha", "username": username, "unsigned_only": unsigned_only})

    def arm_rate_limit(self, count: int = 1) -> None:
        """The next `count` business calls answer HTTP 429."""
        self._call("POST", "arm", {"what": "rate_limit", "count": count})

    def arm_login_block(self, username: str, code: int) -> None:
        """Every login of `username` answers a risk / blocked errorCode (2000008 … 8000079; 0 clears)."""
        self._call("POST", "arm", {"what": "login_block", "username": username, "code": code})

    def sms_code(self, username: str) -> str | None:
        code = self._call("GET", "sms", username=username)["code"]
        return None if code is None else str(code)

    def qr_tokens(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "qr")["tokens"])

    def scan_qr(self, username: str, token: str | None = None, confirm: bool = True) -> str:
        """Scan the waiting QR with the app (status 2) and, unless `confirm` is False, confirm it (3)."""
        body: dict[str, Any] = {"username": username, "confirm": confirm}
        if token:
            body["token"] = token
        return str(self._call("POST", "qr/scan", body)["token"])

    def cancel_qr(self, token: str | None = None) -> str:
        body: dict[str, Any] = {"token": token} if token else {}
        return str(self._call("POST", "qr/cancel", body)["token"])

    # statistics
    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "stats"))

    def reset_stats(self) -> None:
        self._call("POST", "stats/reset", {})

    def requests(self, since: int = 0) -> tuple[list[tuple[str, str, float, float]], int]:
        """The business requests answered since entry `since` (account, route, came in, answered: monotonic
        seconds), and the index to ask from next time."""
        got = self._call("GET", "requests", since=since)
        return [tuple(e) for e in got["entries"]], int(got["next"])  # type: ignore[misc]

    def hold(self, username: str, seconds: float, count: int = 1) -> None:
        """The account's next `count` requests wait `seconds` before they are answered."""
        self._call("POST", "requests/hold", {"username": username, "seconds": seconds, "count": count})

    def holds_left(self, username: str) -> int:
        """How many of the account's armed requests have not come in yet (0: the hold was taken)."""
        return int(self._call("GET", "requests/hold", username=username)["left"])

    def risk(self, **policy: Any) -> dict[str, Any]:
        """Set (and return) the Anti-Content policy: default=, levels={route: level}, fresh_seconds=, score=."""
        return dict(self._call("POST", "risk", policy))
