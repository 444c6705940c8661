"""`pdd-agent sandbox --replay FILE.zip`: a recorded site served from a diagnostics bundle's HAR, so `check` and
`doctor` run against what a merchant's backend answered (the pages and API answers as recorded, redacted)."""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from agent.httpserve import BackgroundServer, QuietHandler, QuietServer

_SKIP = {"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "set-cookie",
         "server", "date"}


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    date: str | None


def _canonical_body(text: str) -> str:
    try:
        return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
    except ValueError:
        return text


def _canonical_query(query: str) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(query, keep_blank_values=True)))


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """How many keys two JSON bodies disagree on (missing on one side counts)."""
    return sum(1 for k in set(a) | set(b) if a.get(k, ...) != b.get(k, ...))


class Recording:
    """The bundle's answers by request: the exact request (method, path, query, body) first, then the same
    without the query; then, for a JSON body where the path was recorded with JSON bodies, the one recorded
    body closest to it (fewest keys that differ; a tie answers nothing: which list was meant is unknown);
    otherwise by method and path alone. Where a request was answered more than once, the last answer counts
    (the state the walk ended in: logged in, the check's own read)."""

    def __init__(self, har: Mapping[str, Any]) -> None:
        self._by: dict[tuple[str, ...], Answer] = {}
        self._bodies: dict[tuple[str, str], dict[str, tuple[dict[str, Any], Answer]]] = {}
        self.origins: set[str] = set()
        entries = list(har.get("log", {}).get("entries", []))
        for e in entries:
            req, resp = e.get("request", {}), e.get("response", {})
            status = int(resp.get("status") or 0)
            if status <= 0:  # blocked or failed while recording: nothing to replay
                continue
            parts = urlsplit(str(req.get("url", "")))
            self.origins.add(f"{parts.scheme}://{parts.netloc}")
            method = str(req.get("method", "GET")).upper()
            body = _canonical_body(str((req.get("postData") or {}).get("text", "")))
            answer = self._answer(resp, status)
            for key in ((method, parts.path, _canonical_query(parts.query), body), (method, parts.path, body),
                        (method, parts.path)):
                self._by[key] = answer
            obj = _json_object(body)
            if obj is not None:
                self._bodies.setdefault((method, parts.path), {})[body] = (obj, answer)
        self.count = len(entries)

    def _answer(self, resp: Mapping[str, Any], status: int) -> Answer:
        content = resp.get("content") or {}
        text = str(content.get("text") or "")
        if content.get("encoding") == "base64":
            body = base64.b64decode(text)
        else:
            for o in self.origins:  # absolute links to the recorded origin stay on the replay
                text = text.replace(o, "")
            body = text.encode("utf-8")
        headers, date = [], None
        for h in resp.get("headers", []):
            name, value = str(h.get("name", "")), str(h.get("value", ""))
            if name.lower() == "date":
                date = value
            elif name.lower() == "location":
                for o in self.origins:
                    value = value.replace(o, "")
                headers.append((name, value))
            elif name.lower() not in _SKIP and value != "[redacted]":
                headers.append((name, value))
        return Answer(status, tuple(headers), body, date)

    def find(self, method: str, path: str, query: str, body: bytes) -> Answer | None:
        text = _canonical_body(body.decode("utf-8", errors="replace")) if body else ""
        for key in ((method, path, _canonical_query(query), text), (method, path, text)):
            if key in self._by:
                return self._by[key]
        obj, recorded = _json_object(text), self._bodies.get((method, path))
        if obj is not None and recorded:
            ranked = sorted((_distance(obj, b), n) for n, (b, _) in enumerate(recorded.values()))
            if len(ranked) > 1 and ranked[0][0] == ranked[1][0]:
                return None
            return list(recorded.values())[ranked[0][1]][1]
        return self._by.get((method, path))


def load_bundle(path: Path) -> tuple[Recording, dict[str, Any]]:
    """The recording and the manifest of a bundle; ValueError says what is wrong with the file."""
    try:
        with zipfile.ZipFile(path) as z:
            har = json.loads(z.read("har.json"))
            manifest = json.loads(z.read("manifest.json"))
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
        raise ValueError(f"{path}: not a pdd-agent diagnostics bundle ({exc})") from exc
    return Recording(har), manifest


class _Handler(QuietHandler):
    server: _Server

    def answer(self, method: str) -> None:
        path, _, body = self.request_parts()
        got = self.server.recording.find(method, path, urlsplit(self.path).query, body)
        if got is None:
            data = json.dumps({"success": False, "errorCode": 404,
                               "errorMsg": f"not in the bundle: {method} {path}（诊断包里没有这个请求）"},
                              ensure_ascii=False).encode()
            got = Answer(404, (("Content-Type", "application/json; charset=utf-8"),), data, None)
        self.send_response_only(got.status)
        self.send_header("Date", got.date or self.date_time_string())  # the recorded time: deadlines as recorded
        for name, value in got.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(got.body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(got.body)


class _Server(QuietServer):
    recording: Recording


class ReplayServer(BackgroundServer):
    """Serves a bundle on host:port (port 0: a free one)."""

    thread_name = "replay"

    def __init__(self, bundle: Path, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> None:
        self.recording, self.manifest = load_bundle(bundle)
        self.httpd = _Server((host, port), _Handler)
        self.httpd.recording = self.recording
        self.httpd.verbose = verbose
