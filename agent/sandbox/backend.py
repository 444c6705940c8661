"""Sandbox state: shops, accounts, sessions, login flows, rate limits and the list queries.

Thread-safe (one lock); knows nothing of HTTP. The server module maps requests onto it.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.sandbox import items as it
from agent.sandbox.clock import SandboxClock

OK = 1000000
ERR_SESSION = 43001
ERR_RATE = 54001
MSG_SESSION = "会话已过期"
MSG_RATE = "操作太过频繁，请稍后再试"
# Login error codes are the sandbox's own (the live /janus/api/auth needs encryption we do not model);
# 70031 = captcha required follows xingyu42's classify-rate-limit.js (per repo).
ERR_PASSWORD = 2000
ERR_QR_ONLY = 2001
ERR_SMS_NEEDED = 2002
ERR_SMS_WRONG = 2003
ERR_CAPTCHA = 70031
TRAP_MODES = ("never", "sometimes", "always")
QR_TTL_REAL_SECONDS = 300


@dataclass(slots=True)
class Account:
    username: str
    password: str
    login: str  # password | sms | qr_only
    mobile: str
    mall_id: int
    trusted_devices: set[str] = field(default_factory=set)
    force_sms: bool = False


@dataclass(slots=True)
class Shop:
    mall_id: int
    name: str
    items: dict[int, it.Item]


@dataclass(slots=True)
class Session:
    pass_id: str
    nano_fp: str
    rckk: str
    username: str
    mall_id: int
    expires_at: float  # sandbox time
    revoked: bool = False


@dataclass(slots=True)
class QrToken:
    token: str
    created_real: float
    status: str = "waiting"  # waiting | confirmed | consumed
    username: str | None = None


@dataclass(slots=True)
class Settings:
    build: str = "3QqLW"
    blind_navigation: str = "sometimes"
    session_ttl: float = 3 * it.DAY
    rate_limit_per_minute: int = 600
    max_page_size: int = 100
    all_code: int = it.DEFAULT_ALL_CODE
    filter_codes: dict[str, int] = field(default_factory=lambda: dict(it.DEFAULT_FILTER_CODES))
    rename_fields: dict[str, str] = field(default_factory=dict)  # a new build renaming row fields


@dataclass(slots=True)
class LoginResult:
    ok: bool
    code: int
    message: str
    session: Session | None = None
    need_sms: bool = False
    captcha_ticket: str | None = None


class Backend:
    """The whole simulated merchant backend, for any number of shops."""

    def __init__(self, clock: SandboxClock | None = None, seed: int = 0) -> None:
        self.clock = clock or SandboxClock()
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.settings = Settings()
        self.shops: dict[int, Shop] = {}
        self.accounts: dict[str, Account] = {}
        self.sessions: dict[str, Session] = {}
        self.sms_codes: dict[str, str] = {}
        self.captcha_armed: set[str | None] = set()  # usernames, or None for everyone
        self.captcha_tickets: dict[str, bool] = {}  # ticket -> passed
        self.qr_tokens: dict[str, QrToken] = {}
        self.rate_armed = 0
        self.rate_status = 200
        self.rate_windows: dict[str, deque[float]] = {}
        self.stats: Counter[str] = Counter()
        self.query_bodies: deque[dict[str, Any]] = deque(maxlen=200)
        self.scenario_name = ""

    # ---- scenario -------------------------------------------------------------------------
    def load_scenario(self, scenario: Mapping[str, Any]) -> None:
        with self.lock:
            now = self.clock.now()
            self.shops.clear()
            self.accounts.clear()
            self.sessions.clear()
            self.qr_tokens.clear()
            self.sms_codes.clear()
            self.captcha_armed.clear()
            self.rate_armed = 0
            self.stats.clear()
            self.scenario_name = str(scenario.get("name", ""))
            self.settings = Settings()
            self.configure(scenario.get("settings", {}))
            for raw_shop in scenario.get("shops", []):
                self.add_shop(raw_shop, now)

    def add_shop(self, raw: Mapping[str, Any], now: float | None = None) -> Shop:
        with self.lock:
            now = self.clock.now() if now is None else now
            mall_id = int(raw["mall_id"])
            if mall_id in self.shops:
                raise ValueError(f"duplicate mall_id {mall_id}")
            shop = Shop(mall_id=mall_id, name=str(raw["name"]), items={})
            for raw_item in raw.get("items", []):
                item = it.item_from_scenario(raw_item, now)
                shop.items[item.id] = item
            for acc in raw.get("accounts", []):
                username = str(acc["username"])
                if username in self.accounts:
                    raise ValueError(f"duplicate account {username}")
                login = str(acc.get("login", "password"))
                if login not in {"password", "sms", "qr_only"}:
                    raise ValueError(f"account {username}: unknown login {login!r}")
                self.accounts[username] = Account(
                    username=username, password=str(acc.get("password", "")), login=login,
                    mobile=str(acc.get("mobile", "138****0000")), mall_id=mall_id,
                )
            self.shops[mall_id] = shop
            return shop

    def configure(self, settings: Mapping[str, Any]) -> None:
        with self.lock:
            s = self.settings
            for key, value in settings.items():
                if key == "build":
                    s.build = str(value)
                elif key == "blind_navigation":
                    if value not in TRAP_MODES:
                        raise ValueError(f"blind_navigation must be one of {TRAP_MODES}")
                    s.blind_navigation = str(value)
                elif key == "session_ttl":
                    s.session_ttl = float(value)
                elif key == "rate_limit_per_minute":
                    s.rate_limit_per_minute = int(value)
                elif key == "all_code":
                    s.all_code = int(value)
                elif key == "rename_fields":
                    s.rename_fields = {str(k): str(v) for k, v in value.items()}
                elif key == "filter_codes":
                    unknown = set(value) - set(it.FILTER_LABELS)
                    if unknown:
                        raise ValueError(f"unknown quick filters {sorted(unknown)}")
                    s.filter_codes.update({str(k): int(v) for k, v in value.items()})
                    if len(set(s.filter_codes.values()) | {s.all_code}) != len(s.filter_codes) + 1:
                        raise ValueError("quick filter codes must be distinct")
                else:
                    raise ValueError(f"unknown setting {key!r}")

    def shop_items(self, mall_id: int) -> list[it.Item]:
        """The shop's items after applying the clock (deadlines passed become refunds)."""
        with self.lock:
            now = self.clock.now()
            items = list(self.shops[mall_id].items.values())
            for item in items:
                it.apply_time(item, now)
            return items

    def find_item(self, item_id: int) -> tuple[Shop, it.Item]:
        with self.lock:
            for shop in self.shops.values():
                if item_id in shop.items:
                    return shop, shop.items[item_id]
        raise KeyError(item_id)

    # ---- sessions -------------------------------------------------------------------------
    def _new_session(self, account: Account) -> Session:
        digits = "".join(self.rng.choice("0123456789") for _ in range(10))
        pass_id = f"windows_1-{secrets.token_hex(16)}_{account.mall_id}_{digits}"
        sess = Session(
            pass_id=pass_id, nano_fp=f"Xp{secrets.token_urlsafe(18)}", rckk=secrets.token_urlsafe(24),
            username=account.username, mall_id=account.mall_id,
            expires_at=self.clock.now() + self.settings.session_ttl,
        )
        self.sessions[pass_id] = sess
        self.stats["logins"] += 1
        return sess

    def session_for(self, cookies: Mapping[str, str], *, business: bool = False) -> Session | None:
        """The live session the cookies carry; business APIs also need `_nano_fp` and `rckk`."""
        with self.lock:
            sess = self.sessions.get(cookies.get("PASS_ID", ""))
            if sess is None or sess.revoked or self.clock.now() >= sess.expires_at:
                return None
            if business and (cookies.get("_nano_fp") != sess.nano_fp or cookies.get("rckk") != sess.rckk):
                return None
            return sess

    def expire_sessions(self, mall_id: int | None = None, username: str | None = None) -> int:
        with self.lock:
            n = 0
            for sess in self.sessions.values():
                if (mall_id is None or sess.mall_id == mall_id) and (username in (None, sess.username)):
                    if not sess.revoked:
                        sess.revoked = True
                        n += 1
            return n

    # ---- password / SMS / captcha login -----------------------------------------------------
    def password_login(self, username: str, password: str, device: str, sms_code: str = "") -> LoginResult:
        with self.lock:
            self.stats["login_attempts"] += 1
            acc = self.accounts.get(username)
            if acc is None or acc.password != password:
                return LoginResult(False, ERR_PASSWORD, "账号或密码错误，请重新输入")
            if acc.login == "qr_only":
                return LoginResult(False, ERR_QR_ONLY, "该账号存在安全风险，请使用拼多多商家版App扫码登录")
            if None in self.captcha_armed or username in self.captcha_armed:
                ticket = secrets.token_hex(8)
                self.captcha_tickets[ticket] = False
                return LoginResult(False, ERR_CAPTCHA, "请完成安全验证", captcha_ticket=ticket)
            needs_sms = acc.force_sms or (acc.login == "sms" and device not in acc.trusted_devices)
            if needs_sms:
                if not sms_code:
                    return LoginResult(False, ERR_SMS_NEEDED, "为了您的账号安全，请输入短信验证码", need_sms=True)
                if self.sms_codes.get(username) != sms_code:
                    return LoginResult(False, ERR_SMS_WRONG, "短信验证码错误", need_sms=True)
                del self.sms_codes[username]
                acc.force_sms = False
                if device:
                    acc.trusted_devices.add(device)
            return LoginResult(True, OK, "", session=self._new_session(acc))

    def send_sms(self, username: str) -> str | None:
        with self.lock:
            if username not in self.accounts:
                return None
            code = f"{self.rng.randrange(1000000):06d}"
            self.sms_codes[username] = code
            self.stats["sms_sent"] += 1
            return code

    def arm_sms(self, username: str) -> None:
        with self.lock:
            self.accounts[username].force_sms = True

    def arm_captcha(self, username: str | None = None) -> None:
        with self.lock:
            self.captcha_armed.add(username)

    def clear_captcha(self) -> None:
        """A human solved the slider: pending tickets pass and the captcha is disarmed."""
        with self.lock:
            self.captcha_armed.clear()
            for ticket in self.captcha_tickets:
                self.captcha_tickets[ticket] = True

    # ---- QR login ---------------------------------------------------------------------------
    def new_qr(self) -> QrToken:
        with self.lock:
            tok = QrToken(token=secrets.token_urlsafe(12), created_real=time.monotonic())
            self.qr_tokens[tok.token] = tok
            return tok

    def qr_status(self, token: str) -> tuple[str, Session | None]:
        with self.lock:
            tok = self.qr_tokens.get(token)
            if tok is None or (tok.status == "waiting" and time.monotonic() - tok.created_real > QR_TTL_REAL_SECONDS):
                return "expired", None
            if tok.status == "confirmed" and tok.username:
                tok.status = "consumed"
                return "confirmed", self._new_session(self.accounts[tok.username])
            return tok.status, None

    def scan_qr(self, username: str, token: str | None = None) -> str:
        with self.lock:
            if username not in self.accounts:
                raise KeyError(username)
            waiting = [t for t in self.qr_tokens.values() if t.status == "waiting"]
            if token is None:
                if not waiting:
                    raise LookupError("no QR code is waiting to be scanned")
                tok = max(waiting, key=lambda t: t.created_real)
            else:
                tok = self.qr_tokens[token]
            tok.status = "confirmed"
            tok.username = username
            return tok.token

    # ---- rate limit -------------------------------------------------------------------------
    def arm_rate_limit(self, count: int, http_status: int = 200) -> None:
        with self.lock:
            self.rate_armed = count
            self.rate_status = http_status

    def rate_limited(self, key: str) -> int | None:
        """None when the call may go on, else the HTTP status to answer 54001 with."""
        with self.lock:
            if self.rate_armed > 0:
                self.rate_armed -= 1
                self.stats["rate_limited"] += 1
                return self.rate_status
            window = self.rate_windows.setdefault(key, deque())
            t = time.monotonic()
            while window and t - window[0] > 60:
                window.popleft()
            if len(window) >= self.settings.rate_limit_per_minute:
                self.stats["rate_limited"] += 1
                return 200
            window.append(t)
            return None

    def blind_redirect(self) -> bool:
        with self.lock:
            mode = self.settings.blind_navigation
            return mode == "always" or (mode == "sometimes" and self.rng.random() < 0.5)

    # ---- queries ----------------------------------------------------------------------------
    def query_list(self, mall_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """The `result` of queryList; raises ValueError for a bad request."""
        with self.lock:
            self.query_bodies.append(dict(body))
            page_size = int(body.get("pageSize") or 10)
            page_number = int(body.get("pageNumber") or 1)
            if not 1 <= page_size <= self.settings.max_page_size or page_number < 1:
                raise ValueError("pageSize/pageNumber out of range")
            now = self.clock.now()
            rows = self.shop_items(mall_id)
            code = body.get("quickSearchType")
            if code is not None and int(code) != self.settings.all_code:
                label = next((lb for lb, c in self.settings.filter_codes.items() if c == int(code)), None)
                pred = it.FILTERS[label] if label else (lambda i, n: False)
                rows = [i for i in rows if pred(i, now)]
            search = str(body.get("searchText") or "").strip()
            if search:
                rows = [i for i in rows if search in (i.order_sn, str(i.id))]
            if body.get("orderByExpireTimeAsc"):
                rows.sort(key=lambda i: (i.deadline or i.proof_deadline or float("inf"), i.id))
            else:
                rows.sort(key=lambda i: (-i.created_at, i.id))
            start = (page_number - 1) * page_size
            page = rows[start : start + page_size]
            renames = self.settings.rename_fields
            out = [it.to_row(i, now) for i in page]
            if renames:
                out = [{renames.get(k, k): v for k, v in row.items()} for row in out]
            return {"total": len(rows), "list": out}

    def query_count(self, mall_id: int) -> dict[str, int]:
        with self.lock:
            return it.counts(self.shop_items(mall_id), self.clock.now())

    def header_counters(self, mall_id: int) -> dict[str, int]:
        """The four 「售后数据」 header counters (labels confirmed, mms-backend.md §1.5)."""
        with self.lock:
            now = self.clock.now()
            items = self.shop_items(mall_id)
            return {
                "24小时内将逾期订单数": sum(1 for i in items if it.FILTERS["待处理即将逾期"](i, now)),
                "24小时内待商家举证": sum(1 for i in items if it.FILTERS["待举证即将逾期"](i, now)),
                "24小时内平台同意退款": sum(
                    1 for i in items
                    if it.ACTION_TIMEOUT_REFUND in i.actions and i.close_time and now - i.close_time < it.DAY
                ),
                "24小时内将逾期工单数": 0,
            }
