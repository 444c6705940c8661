"""The live canary for Anti-Content (`doctor --probe-signing`): each endpoint the check uses, called once
cookie-only and once signed a few seconds apart; what the site demanded of each, for the diagnostics bundle."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from agent.browser.api_reader import ApiReader
from agent.browser.http_client import ShopHttp
from agent.browser.plan import default_body
from agent.browser.reader import ReadOptions
from agent.browser.signer import SignedRequests, Signer, SignerError
from agent.core.models import CheckFailure

VERDICTS = {
    ("ok", "ok"): "accepts cookie-only",
    ("captcha", "ok"): "demands Anti-Content",
    ("captcha", "captcha"): "captcha even when signed (a person must pass it)",
}


@dataclass(frozen=True, slots=True)
class SigningProbe:
    endpoint: str
    cookie_only: str  # ok | captcha | logged_out | http NNN | error: …
    signed: str
    verdict: str

    def line(self) -> str:
        return f"{self.endpoint}: cookie-only {self.cookie_only}, signed {self.signed} → {self.verdict}"


def outcome(status: int, data: Any, site: Mapping[str, Any]) -> str:
    """One answer in a word (pure): ok, captcha (54001), logged_out (43001), or the HTTP status / code."""
    api = site["api"]
    if not isinstance(data, dict):
        return f"http {status}"
    code = data.get(api["code_field"])
    if code in api["captcha_codes"]:
        return "captcha"
    if code in api["session_error_codes"]:
        return "logged_out"
    if status >= 400:
        return f"http {status}"
    return "ok" if code in api["ok_codes"] or data.get("success") else f"code {code}"


def verdict(cookie_only: str, signed: str) -> str:
    if "logged_out" in (cookie_only, signed):
        return "logged out: log the shop in first"
    return VERDICTS.get((cookie_only, signed), "unclear: see the bundle")


async def probe(http: ShopHttp, signer: Signer | None, base_url: str, sel: Mapping[str, Any],
                gap: float = 3.0, timeout: float = 15.0) -> list[SigningProbe]:
    """Each endpoint cookie-only, then (after `gap` seconds) signed; never the same request twice in a row."""
    site, api = sel["site"], sel["site"]["api"]
    options = ReadOptions(pacing_seconds=0, timeout_seconds=timeout)
    endpoints = {"queryCount": (api["query_count"], None),
                 "queryWaitHandleCount": (api["query_wait_handle_count"], {}),
                 "queryList": (api["query_list"], default_body(sel["aftersale_list"]))}
    out = []
    for name, (path, body) in endpoints.items():
        plain = await _once(ApiReader(http, base_url, sel, options), path, body, name, site)
        await asyncio.sleep(gap)
        if signer is None:
            signed = "no signer"
        else:
            signed = await _once(ApiReader(SignedRequests(http, signer), base_url, sel, options), path, body, name,
                                 site)
        out.append(SigningProbe(name, plain, signed, verdict(plain, signed)))
    return out


async def _once(reader: ApiReader, path: str, body: Any, name: str, site: Mapping[str, Any]) -> str:
    try:
        status, data = await reader.post_raw(path, body, name)
    except (CheckFailure, SignerError) as exc:
        return f"error: {exc}"
    return outcome(status, data, site)


def as_json(probes: list[SigningProbe]) -> list[dict[str, str]]:
    return [asdict(p) for p in probes]
