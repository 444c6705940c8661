"""Who is asking: scrypt password hashes, the signed session cookie, CSRF tokens, login slow-down after failures,
read-only API tokens; nothing here is ever logged."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.files import write_private

COOKIE = "pdd_session"
LOGIN_COOKIE = "pdd_login"
_N, _R, _P = 2**14, 8, 1  # scrypt cost (≈50 ms, 16 MiB): hashlib.scrypt, stdlib
FREE_FAILURES = 5  # wrong passwords before the login slows down
WINDOW = 900.0  # failures older than this are forgotten


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode("ascii").rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def hash_password(password: str, salt: bytes | None = None) -> str:
    """"scrypt$N$r$p$salt$hash" for [[team.members]] password_hash."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash (constant-time compare); False for a malformed hash."""
    try:
        name, n, r, p, salt, want = stored.split("$")
        if name != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(_unb64(want)), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(want))


def load_key(data_dir: Path) -> bytes:
    """The page's signing key (data_dir/web.key, 0600): made on first start, kept across restarts (sessions
    survive a restart; deleting the file logs everybody out)."""
    path = data_dir / "web.key"
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    write_private(path, key)
    return key


@dataclass(frozen=True)
class Session:
    member: str
    issued: float
    nonce: str


class Signer:
    """Signs and reads the session cookie, derives CSRF tokens from it."""

    def __init__(self, key: bytes, max_age: float) -> None:
        self.key, self.max_age = key, max_age

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self.key, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, member: str, now: float) -> tuple[str, Session]:
        s = Session(member, now, secrets.token_urlsafe(12))
        payload = _b64(json.dumps({"m": s.member, "t": s.issued, "n": s.nonce}, ensure_ascii=False).encode("utf-8"))
        return f"{payload}.{self._mac(payload)}", s

    def read(self, cookie: str | None, now: float) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        payload, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            d = json.loads(_unb64(payload))
            s = Session(str(d["m"]), float(d["t"]), str(d["n"]))
        except (ValueError, KeyError, TypeError):
            return None
        return s if now - s.issued <= self.max_age else None

    def csrf(self, nonce: str) -> str:
        """The CSRF token of a session (or of a login form's nonce): only our pages know it."""
        return self._mac("csrf:" + nonce)[:32]

    def csrf_ok(self, nonce: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(nonce), token or "")


@dataclass
class Throttle:
    """Wrong passwords per client address and per member name: after FREE_FAILURES within WINDOW, each further
    try must wait 2, 4, 8 … s (at most 300) after the last failure."""

    failures: dict[str, list[float]] = field(default_factory=dict)

    def wait(self, keys: list[str], now: float | None = None) -> float:
        """Seconds to wait before another try (0: go ahead)."""
        now = time.monotonic() if now is None else now
        worst = 0.0
        for k in keys:
            recent = [t for t in self.failures.get(k, []) if now - t < WINDOW]
            self.failures[k] = recent
            extra = len(recent) - FREE_FAILURES + 1
            if extra > 0:
                worst = max(worst, min(300.0, 2.0 ** extra) - (now - recent[-1]))
        return max(0.0, worst)

    def failed(self, keys: list[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for k in keys:
            self.failures.setdefault(k, []).append(now)
        if len(self.failures) > 10000:  # a spray of names: forget the oldest half
            for k in sorted(self.failures, key=lambda k: self.failures[k][-1] if self.failures[k] else 0)[:5000]:
                del self.failures[k]

    def succeeded(self, keys: list[str]) -> None:
        for k in keys:
            self.failures.pop(k, None)
