"""Sandbox state: shops, accounts, sessions, login flows, rate limits and the list queries.

Thread-safe (one lock); knows nothing of HTTP. The server module maps requests onto it.
"""

from __future__ import annotations

import base64
import random
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.sandbox import items as it
from agent.sandbox.clock import SandboxClock

OK = 1000000
ERR_SESSION = 43001  # with the response header `checklogin: false` (mms-live-2026.md §F, high)
ERR_CAPTCHA_API = 54001  # captcha required, `result.verifyAuthToken` (§F, high)
ERR_RATE = 42900  # assumed errorCode of an HTTP 429 answer; the status is what counts (§F)
ERR_PARAM = 40002  # assumed code for 「参数校验失败」 (a bad quickSearchType is rejected, §I, medium)
MSG_SESSION = "会话已过期"
MSG_CAPTCHA_API = "为了您的账号安全，请完成安全验证"  # assumed text
MSG_RATE = "操作太过频繁，请稍后再试"
MSG_PARAM = "参数校验失败"
CAPTCHA_TOKEN_TTL_REAL_SECONDS = 600  # cookie mms-mobile-captcha-cookie-token lives 10 min (§F)
# Login error codes. The risk and blocked codes and texts are PDD's (mms-live-2026.md §H, high); the
# codes of a wrong password, the SMS step and the picture captcha are unknown: the sandbox's own.
# 70031 = slider captcha required follows xingyu42's classify-rate-limit.js (per repo).
ERR_PASSWORD = 2000
ERR_SMS_NEEDED = 2002
ERR_SMS_WRONG = 2003
ERR_PICTURE_CAPTCHA = 2004
ERR_CAPTCHA = 70031
BLOCKED_LOGIN = {
    2000008: "账号存在异常，暂时无法登录",  # code high, text unknown (assumed)
    2000009: "店铺无法登录",
    2000016: "系统检测到您的账号异常，存在盗号风险",
    2000017: "密码强度过低，存在盗号风险",  # text high, code unknown (assumed)
    40029: "该店铺已退店，无法登录",
    500000: "系统检测到您所处的网络环境异常，建议您使用账号和密码登录",
    8000079: "账号因安全保护已被禁止在网页版登录，请使用拼多多商家版App扫码登录",
}
QR_ONLY_CODE = 8000079  # a QR-only account's password login answers this (its live equivalent, §H)
SMS_TYPE_LOGIN = 117  # POST /janus/api/mobile/sendVerificationCode {type: 117} (§H, high)
TRAP_MODES = ("never", "sometimes", "always")
QR_TTL_REAL_SECONDS = 300
# scan/login/query result.status (§H, high)
QR_WAITING, QR_SCANNED, QR_DONE, QR_BUSY, QR_EXPIRED, QR_CANCELLED = 1, 2, 3, 5, -1, -2


@dataclass(slots=True)
class Account:
    username: str
    password: str
    login: str  # password | sms | qr_only
    mobile: str
    mall_id: int
    trusted_devices: set[str] = field(default_factory=set)
    force_sms: bool = False
    blocked: int = 0  # an armed BLOCKED_LOGIN code every login of this account answers with


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
    token: str  # the uuid in result.uri's `data`
    created_real: float
    status: int = QR_WAITING
    username: str | None = None
    consumed: bool = False


@dataclass(slots=True)
class Settings:
    build: str = "3QqLW"
    blind_navigation: str = "sometimes"
    session_ttl: float = 3 * it.DAY
    rate_limit_per_minute: int = 600
    max_page_size: int = 100
    filter_codes: dict[str, int] = field(default_factory=lambda: dict(it.DEFAULT_FILTER_CODES))
    rename_fields: dict[str, str] = field(default_factory=dict)  # a new build renaming row fields
    # the page-size Select is rendered (False: a shop whose page size cannot be changed, 10 per page)
    page_size_changer: bool = True
    # gray key front_end_quick_filter_sort: after load, the page switches to 待商家处理 by itself
    # when complainWarning == 0 and waitSellerHandle > 0 (§A); whether it is on for a shop is unknown
    quick_filter_sort: bool = False
    refund_lag: float = 0.0  # seconds past a deadline before the refund job closes the item (assumed)
    qr_ttl: float = QR_TTL_REAL_SECONDS  # real seconds a login QR stays valid (assumed)
    qr_busy: bool = False  # scan/login/query answers status 5 「系统繁忙，请通过账密登录」


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
        self.picture_armed: set[str | None] = set()  # 「请先输入图形验证码」 before the password is checked
        self.password_nonces: set[str] = set()
        self.qr_tokens: dict[str, QrToken] = {}
        self.rate_armed = 0
        self.api_captcha_armed: set[str | None] = set()  # usernames, or None for everyone: 54001
        self.api_captcha_unsigned: set[str | None] = set()  # the same, for requests without Anti-Content
        self.verify_tokens: dict[str, float] = {}  # verifyAuthToken -> real time it passed (0 = not yet)
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
            self.picture_armed.clear()
            self.api_captcha_armed.clear()
            self.api_captcha_unsigned.clear()
            self.verify_tokens.clear()
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
                elif key == "rename_fields":
                    s.rename_fields = {str(k): str(v) for k, v in value.items()}
                elif key == "filter_codes":
                    unknown = set(value) - set(it.FILTER_LABELS)
                    if unknown:
                        raise ValueError(f"unknown quick filters {sorted(unknown)}")
                    s.filter_codes.update({str(k): int(v) for k, v in value.items()})
                    if len(set(s.filter_codes.values())) != len(s.filter_codes):
                        raise ValueError("quick filter codes must be distinct")
                elif key in ("page_size_changer", "quick_filter_sort"):
                    setattr(s, key, bool(value))
                elif key in ("refund_lag", "qr_ttl"):
                    setattr(s, key, float(value))
                elif key == "qr_busy":
                    s.qr_busy = bool(value)
                else:
                    raise ValueError(f"unknown setting {key!r}")

    def shop_items(self, mall_id: int) -> list[it.Item]:
        """The shop's items after applying the clock (deadlines passed become refunds)."""
        with self.lock:
            now = self.clock.now()
            items = list(self.shops[mall_id].items.values())
            for item in items:
                it.apply_time(item, now, self.settings.refund_lag)
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
    def password_key(self) -> tuple[str, str]:
        """queryPasswordEncrypt: (passwordEncrypt, publicKey). The live page RSA-encrypts the password with
        the key; the sandbox's stand-in is `base64("<passwordEncrypt>:<password>")` (login.js)."""
        with self.lock:
            nonce = secrets.token_hex(8)
            self.password_nonces.add(nonce)
            return nonce, "SANDBOX-" + secrets.token_hex(16)

    def decrypt_password(self, encrypted: str, nonce: str) -> str | None:
        with self.lock:
            if nonce not in self.password_nonces:
                return None
            self.password_nonces.discard(nonce)
        try:
            prefix, _, password = base64.b64decode(encrypted).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return password if prefix == nonce else None

    def password_login(
        self, username: str, password: str, device: str, sms_code: str = "", picture_code: str = ""
    ) -> LoginResult:
        with self.lock:
            self.stats["login_attempts"] += 1
            acc = self.accounts.get(username)
            if acc is None or acc.password != password:
                return LoginResult(False, ERR_PASSWORD, "账号或密码错误，请重新输入")
            if acc.blocked:
                return LoginResult(False, acc.blocked, BLOCKED_LOGIN[acc.blocked])
            if acc.login == "qr_only":
                return LoginResult(False, QR_ONLY_CODE, BLOCKED_LOGIN[QR_ONLY_CODE])
            if username in self.picture_armed or None in self.picture_armed:
                if not picture_code:
                    return LoginResult(False, ERR_PICTURE_CAPTCHA, "请先输入图形验证码")
            if None in self.captcha_armed or username in self.captcha_armed:
                ticket = secrets.token_hex(8)
                self.captcha_tickets[ticket] = False
                return LoginResult(False, ERR_CAPTCHA, "请完成安全验证", captcha_ticket=ticket)
            needs_sms = acc.force_sms or (acc.login == "sms" and device not in acc.trusted_devices)
            if needs_sms:
                if not sms_code:
                    return LoginResult(False, ERR_SMS_NEEDED, "为了您的账号安全，请验证手机号后继续登录", need_sms=True)
                if self.sms_codes.get(username) != sms_code:
                    return LoginResult(False, ERR_SMS_WRONG, "验证码错误，请重新输入", need_sms=True)
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
        """A human solved the captcha in front of them: pending login tickets and 54001 tokens pass,
        and every captcha is disarmed (a request without a passed token goes on too)."""
        with self.lock:
            self.captcha_armed.clear()
            self.picture_armed.clear()
            self.api_captcha_armed.clear()
            self.api_captcha_unsigned.clear()
            for ticket in self.captcha_tickets:
                self.captcha_tickets[ticket] = True
            now = time.monotonic()
            for token, passed in self.verify_tokens.items():
                self.verify_tokens[token] = passed or now

    def arm_picture_captcha(self, username: str | None = None) -> None:
        with self.lock:
            self.picture_armed.add(username)

    def arm_login_block(self, username: str, code: int) -> None:
        """Every login of `username` answers `code` (one of BLOCKED_LOGIN; 0 clears)."""
        with self.lock:
            if code and code not in BLOCKED_LOGIN:
                raise ValueError(f"unknown blocked-login code {code}; known: {sorted(BLOCKED_LOGIN)}")
            self.accounts[username].blocked = code

    # ---- QR login ---------------------------------------------------------------------------
    def new_qr(self) -> QrToken:
        with self.lock:
            tok = QrToken(token=str(uuid.uuid4()), created_real=time.monotonic())
            self.qr_tokens[tok.token] = tok
            return tok

    def qr_status(self, token: str) -> tuple[int, Session | None, int]:
        """(status, session on success, blocked errorCode or 0) for scan/login/query."""
        with self.lock:
            tok = self.qr_tokens.get(token)
            if tok is None:
                return QR_EXPIRED, None, 0
            if tok.status in (QR_WAITING, QR_SCANNED) and time.monotonic() - tok.created_real > self.settings.qr_ttl:
                tok.status = QR_EXPIRED
            if self.settings.qr_busy and tok.status == QR_WAITING:
                return QR_BUSY, None, 0
            if tok.status == QR_DONE and tok.username and not tok.consumed:
                acc = self.accounts[tok.username]
                if acc.blocked and acc.blocked != QR_ONLY_CODE:
                    tok.status = QR_CANCELLED
                    return QR_CANCELLED, None, acc.blocked
                tok.consumed = True
                return QR_DONE, self._new_session(acc), 0
            return tok.status, None, 0

    def scan_qr(self, username: str, token: str | None = None, confirm: bool = True) -> str:
        """The merchant scans the QR with the app (status 2), and confirms on the phone (status 3)."""
        with self.lock:
            if username not in self.accounts:
                raise KeyError(username)
            if token is None:
                waiting = [t for t in self.qr_tokens.values() if t.status in (QR_WAITING, QR_SCANNED)]
                if not waiting:
                    raise LookupError("no QR code is waiting to be scanned")
                tok = max(waiting, key=lambda t: t.created_real)
            else:
                tok = self.qr_tokens[token]
            tok.status = QR_DONE if confirm else QR_SCANNED
            tok.username = username
            return tok.token

    def cancel_qr(self, token: str | None = None) -> str:
        """The merchant pressed cancel on the phone (status −2)."""
        with self.lock:
            live = [t for t in self.qr_tokens.values() if t.status in (QR_WAITING, QR_SCANNED)]
            tok = self.qr_tokens[token] if token else max(live, key=lambda t: t.created_real)
            tok.status = QR_CANCELLED
            return tok.token

    # ---- rate limit and the business-API captcha (54001) ------------------------------------
    def arm_rate_limit(self, count: int) -> None:
        with self.lock:
            self.rate_armed = count

    def rate_limited(self, key: str) -> bool:
        """True when the call must be answered with HTTP 429 (armed, or over the per-minute budget)."""
        with self.lock:
            if self.rate_armed > 0:
                self.rate_armed -= 1
                self.stats["rate_limited"] += 1
                return True
            window = self.rate_windows.setdefault(key, deque())
            t = time.monotonic()
            while window and t - window[0] > 60:
                window.popleft()
            if len(window) >= self.settings.rate_limit_per_minute:
                self.stats["rate_limited"] += 1
                return True
            window.append(t)
            return False

    def arm_api_captcha(self, username: str | None = None, unsigned_only: bool = False) -> None:
        """Business calls answer 54001; with `unsigned_only`, only those without an `Anti-Content` header
        (cookie-only replays: a stricter risk check, mms-live-2026.md §F)."""
        with self.lock:
            (self.api_captcha_unsigned if unsigned_only else self.api_captcha_armed).add(username)

    def api_captcha(self, sess: Session, tokens: list[str], signed: bool = False) -> str | None:
        """None when the business call may go on, else a new verifyAuthToken to answer 54001 with.

        A request carrying a token a human passed within 10 min (header `verifyauthtoken` or the cookie
        `mms-mobile-captcha-cookie-token`) goes on.
        """
        with self.lock:
            armed = None in self.api_captcha_armed or sess.username in self.api_captcha_armed
            unsigned = not signed and (None in self.api_captcha_unsigned or sess.username in self.api_captcha_unsigned)
            if not armed and not unsigned:
                return None
            now = time.monotonic()
            for tok in tokens:
                passed = self.verify_tokens.get(tok, 0.0)
                if passed and now - passed < CAPTCHA_TOKEN_TTL_REAL_SECONDS:
                    return None
            token = secrets.token_hex(16)
            self.verify_tokens[token] = 0.0
            self.stats["api_captcha"] += 1
            return token

    def pass_api_captcha(self, token: str) -> bool:
        """A human passed the floating captcha shown for `token` (the page then retries with it)."""
        with self.lock:
            if token not in self.verify_tokens:
                return False
            self.verify_tokens[token] = time.monotonic()
            return True

    def blind_redirect(self) -> bool:
        with self.lock:
            mode = self.settings.blind_navigation
            return mode == "always" or (mode == "sometimes" and self.rng.random() < 0.5)

    # ---- queries ----------------------------------------------------------------------------
    def query_list(self, mall_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """The `result` of queryList; raises ValueError for a bad request (「参数校验失败」)."""
        with self.lock:
            self.query_bodies.append(dict(body))
            page_size = int(body.get("pageSize") or 10)
            page_number = int(body.get("pageNumber") or 1)
            if not 1 <= page_size <= self.settings.max_page_size or page_number < 1:
                raise ValueError("pageSize/pageNumber out of range")
            now = self.clock.now()
            rows = self.shop_items(mall_id)
            code = body.get("quickSearchType")
            if code is not None:  # no quickSearchType lists everything (xiaoemoxiw's retry, §I)
                label = next((lb for lb, c in self.settings.filter_codes.items() if c == int(code)), None)
                if label is None:
                    raise ValueError(f"unknown quickSearchType {code}")
                rows = [i for i in rows if it.BY_LABEL[label].select(i, now)]
            search = str(body.get("searchText") or "").strip()
            if search:
                rows = [i for i in rows if search in (i.order_sn, str(i.id))]
            if body.get("orderByExpireTimeAsc"):
                rows.sort(key=lambda i: (i.clock() or float("inf"), i.id))
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

    def wait_handle_count(self, mall_id: int) -> dict[str, int]:
        """queryWaitHandleCount: the four 「售后数据」 header counters by their result keys."""
        with self.lock:
            return it.wait_handle_counts(self.shop_items(mall_id), self.clock.now())
