"""The doctor's diagnostics bundle: the walk's HAR (mms origins only), pages, screenshots and report, redacted
by `core.redact` before a byte is written, in one zip with a manifest."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import APIRequestContext, APIResponse, BrowserContext

from agent.core.losses import is_quality
from agent.core.redact import Redactor
from agent.files import write_private

FORMAT = 1
_TEXT_MIME = re.compile(r"(?i)(json|text|html|javascript|xml|x-www-form-urlencoded)")
NEVER = [
    "cookie values, Set-Cookie, Anti-Content, verifyauthtoken or any other credential header",
    "passwords, webhook keys, proxy credentials, the shop's account name",
    "buyer names, phone numbers, addresses, buyer ids, free-text reasons and remarks (stand-ins instead)",
    "real order numbers (re-mapped consistently: rows still relate)",
    "requests to hosts other than the shop's mms origins",
]


class RecordedRequests:
    """`context.request` (Playwright's HAR leaves those requests out), noting each exchange as a HAR entry."""

    def __init__(self, api: APIRequestContext) -> None:
        self._api = api
        self.entries: list[dict[str, Any]] = []

    async def get(self, url: str, **kw: Any) -> APIResponse:
        return await self._note("GET", url, kw, await self._api.get(url, **kw))

    async def post(self, url: str, **kw: Any) -> APIResponse:
        return await self._note("POST", url, kw, await self._api.post(url, **kw))

    async def _note(self, method: str, url: str, kw: Mapping[str, Any], resp: APIResponse) -> APIResponse:
        data = kw.get("data")
        headers = [{"name": k, "value": str(v)} for k, v in (kw.get("headers") or {}).items()]
        request: dict[str, Any] = {"method": method, "url": url, "headers": headers, "cookies": [],
                                   "queryString": [], "httpVersion": "HTTP/1.1", "headersSize": -1, "bodySize": -1}
        if data is not None:
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            request["postData"] = {"mimeType": "application/json", "text": text}
        try:
            body = (await resp.body()).decode("utf-8", errors="replace")
        except Exception:  # a redirect or an answer already gone: its headers still tell
            body = ""
        mime = resp.headers.get("content-type", "")
        self.entries.append({
            "startedDateTime": datetime.now().astimezone().isoformat(), "time": 0, "request": request,
            "response": {"status": resp.status, "statusText": resp.status_text, "httpVersion": "HTTP/1.1",
                         "headers": [{"name": h["name"], "value": h["value"]} for h in resp.headers_array],
                         "cookies": [], "content": {"size": len(body), "mimeType": mime, "text": body},
                         "redirectURL": resp.headers.get("location", ""), "headersSize": -1, "bodySize": -1},
            "cache": {}, "timings": {"send": 0, "wait": 0, "receive": 0},
        })
        return resp


class RecordingContext:
    """A browser context whose `request` calls are recorded too (everything else is the context itself)."""

    def __init__(self, context: BrowserContext) -> None:
        self._context = context
        self.request = RecordedRequests(context.request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _bodies(entry: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    post = entry.get("request", {}).get("postData") or {}
    if post.get("text"):
        yield str(post["text"]), str(post.get("mimeType", ""))
    content = entry.get("response", {}).get("content") or {}
    text = _content_text(content)
    if text is not None:
        yield text, str(content.get("mimeType", ""))


def _content_text(content: Mapping[str, Any]) -> str | None:
    """A response body as text when it is text (a base64-embedded text body decoded); None for binary."""
    text, mime = content.get("text"), str(content.get("mimeType", ""))
    if text is None or not _TEXT_MIME.search(mime):
        return None
    if content.get("encoding") == "base64":
        try:
            return base64.b64decode(text).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
    return str(text)


def redact_har(har: Mapping[str, Any], origins: Iterable[str], r: Redactor) -> dict[str, Any]:
    """The HAR limited to `origins`, every credential and buyer value redacted (two passes: buyer values seen
    in any JSON answer are known before the pages that show them are redacted)."""
    keep = {o.lower() for o in origins}
    log = har.get("log", {})
    entries = [e for e in log.get("entries", []) if origin(e.get("request", {}).get("url", "")) in keep]
    for e in entries:  # pass 1: learn the secrets and the buyer values
        r.headers(e.get("request", {}).get("headers", []))
        r.headers(e.get("response", {}).get("headers", []))
        r.cookies(e.get("request", {}).get("cookies", []))
        r.cookies(e.get("response", {}).get("cookies", []))
        for text, mime in _bodies(e):
            r.learn(text, mime)
    r.counts.clear()
    out = []
    for e in entries:
        req, resp = dict(e.get("request", {})), dict(e.get("response", {}))
        req["url"] = r.url(str(req.get("url", "")))
        req["headers"], resp["headers"] = r.headers(req.get("headers", [])), r.headers(resp.get("headers", []))
        req["cookies"], resp["cookies"] = r.cookies(req.get("cookies", [])), r.cookies(resp.get("cookies", []))
        req["queryString"] = [{"name": q.get("name", ""), "value": _param(r, q)} for q in req.get("queryString", [])]
        if req.get("postData"):
            post = dict(req["postData"])
            mime = str(post.get("mimeType", ""))
            if post.get("text") is not None:
                post["text"] = r.body(str(post["text"]), mime)
            post["params"] = [{**p, "value": _param(r, p)} for p in post.get("params", [])]
            req["postData"] = post
        content = dict(resp.get("content") or {})
        text = _content_text(content)
        if text is not None:
            content["text"] = r.body(text, str(content.get("mimeType", "")))
            content.pop("encoding", None)
            content["size"] = len(content["text"].encode())
        resp["content"] = content
        if resp.get("redirectURL"):
            resp["redirectURL"] = r.url(str(resp["redirectURL"]))
        out.append({**e, "request": req, "response": resp})
    pages = [{**p, "title": r.text(str(p.get("title", "")))} for p in log.get("pages", [])]
    return {"log": {**log, "pages": pages, "entries": out}}


def redact_item(r: Redactor, item: Mapping[str, Any], reasons: Iterable[str] = ()) -> dict[str, Any]:
    """A `check --json` item as the bundle's answers show it: the same stand-ins for its order number and reason
    (so its 品质退款风险 is what the stand-in reason says: `reasons` are the quality reasons in force)."""
    out = dict(item)
    out["order_sn"] = r.stand_in(str(item.get("order_sn", "")), "order_sn")
    out["reason"] = r.stand_in(str(item.get("reason", "")))
    if "quality_risk" in out:
        out["quality_risk"] = is_quality(out["reason"], reasons)
    return {k: r.text(v) if isinstance(v, str) and k not in ("order_sn", "reason") else v for k, v in out.items()}


def _param(r: Redactor, p: Mapping[str, Any]) -> str:
    name, value = str(p.get("name", "")), str(p.get("value", ""))
    rule = r.rule_for(name)
    if rule is None:
        return r.text(value)
    r.counts[rule] += 1
    return "[redacted]" if rule in ("secret_key", "account") else r.stand_in(value, rule)


def strip_scripts(html: str) -> str:
    """The page without its scripts: a screenshot of the redacted DOM must not fetch or draw live data again."""
    return re.sub(r"(?is)<script\b.*?</script\s*>", "", html)


async def write_bundle(
    path: Path, *, hars: Iterable[Path], pages: Mapping[str, str], report: str, selectors: Mapping[str, Any],
    redactor: Redactor, origins: Iterable[str], about: Mapping[str, Any],
    render: Callable[[str], Awaitable[bytes]] | None = None, items: Iterable[Mapping[str, Any]] = (),
    entries: Iterable[Mapping[str, Any]] = (), reasons: Iterable[str] = (),
) -> dict[str, Any]:
    """Redact and zip: `hars` (merged), `pages` (name -> DOM), the doctor's `report`, the `selectors` in force
    (defaults merged with the admin's override, as one JSON);
    `render` draws a redacted DOM as a PNG. Returns the manifest (also inside the zip as manifest.json)."""
    merged: dict[str, Any] = {"log": {"version": "1.2", "creator": {"name": "pdd-agent"}, "pages": [], "entries": []}}
    for har in hars:
        if har.exists():
            data = json.loads(har.read_text(encoding="utf-8"))
            merged["log"]["pages"] += data.get("log", {}).get("pages", [])
            merged["log"]["entries"] += data.get("log", {}).get("entries", [])
    merged["log"]["entries"] += list(entries)  # the request API's, recorded by RecordingContext
    merged["log"]["entries"].sort(key=lambda e: str(e.get("startedDateTime", "")))
    clean = redact_har(merged, origins, redactor)
    files: dict[str, bytes] = {"har.json": json.dumps(clean, ensure_ascii=False, indent=1).encode()}
    for name, html in pages.items():
        dom = redactor.text(html)
        files[f"dom/{name}.html"] = dom.encode()
        if render is not None:
            files[f"screenshots/{name}.png"] = await render(strip_scripts(dom))
    files["report.txt"] = redactor.text(report).encode()
    files["items.json"] = json.dumps([redact_item(redactor, i, list(reasons)) for i in items], ensure_ascii=False,
                                     indent=1).encode()
    files["selectors.json"] = json.dumps(selectors, ensure_ascii=False, indent=1, default=str).encode()
    manifest = {
        "format": FORMAT, **about, "created_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "origins": sorted(set(origins)),
        "files": [{"name": n, "bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()} for n, b in files.items()],
        "redacted": redactor.summary(), "never_contains": NEVER,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
        for name, data in files.items():
            z.writestr(name, data)
    write_private(path, buf.getvalue())
    return manifest
