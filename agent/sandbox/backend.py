"""Sandbox state: scenario, shops and items, sessions, rate limits, the 54001 captcha and the list queries
(the login flows in logins.py, the records and codes in records.py).

Thread-safe (one lock); knows nothing of HTTP. The server module maps requests onto it.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

from agent.sandbox import items as it
from agent.sandbox.clock import SandboxClock
from agent.sandbox.logins import Logins
from agent.sandbox.records import CAPTCHA_TOKEN_TTL_REAL_SECONDS, TRAP_MODES, Account, QrToken, Session, Settings, Shop
from agent.sandbox.risk import RiskPolicy
from agent.sandbox.traffic import BusiestSecond, RequestLog

STATUS_FILTER = "afterSalesStatusList"  # queryList's status filter (selectors [refunds].status_field, low)


class Backend(Logins):
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
        self.arrivals: dict[int, list[dict[str, Any]]] = {}  # mall_id -> items that arrive after its next queryCount
        self.api_captcha_armed: set[str | None] = set()  # usernames, or None for everyone: 54001
        self.api_captcha_unsigned: set[str | None] = set()  # the same, for requests without Anti-Content
        self.verify_tokens: dict[str, float] = {}  # verifyAuthToken -> real time it passed (0 = not yet)
        self.rate_windows: dict[str, deque[float]] = {}
        self.stats: Counter[str] = Counter()
        # who called, per account: "client address via proxy" → requests (the tests' proof of a shop's proxy)
        self.clients: dict[str, Counter[str]] = {}
        self.agents: dict[str, Counter[str]] = {}  # per account: "User-Agent | Accept-Language" → requests
        self._arrivals = BusiestSecond()  # real arrival times of backend requests
        self.peak_per_second = 0  # the most backend requests seen within any one second
        self.requests = RequestLog()  # every answered request with a session, and armed holds
        self.risk = RiskPolicy()  # what each business route demands of Anti-Content (default: nothing)
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
            self.risk = RiskPolicy()
            self.rate_armed = 0
            self.arrivals.clear()
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
            shop = Shop(mall_id=mall_id, name=str(raw["name"]), items={}, tickets=int(raw.get("tickets", 0)))
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

    def note_request(self, username: str | None, address: str, via: str, now: float | None = None,
                     agent: str = "") -> None:
        """One backend request arrived (not the control API, not a static file) at `now` (the moment its request
        was read): who sent it, through what, and the busiest second so far."""
        at = time.monotonic() if now is None else now  # when it came in, before any wait for the lock
        with self.lock:
            self.peak_per_second = self._arrivals.add(at)
            if username is not None:
                self.clients.setdefault(username, Counter())[f"{address} via {via or '-'}"] += 1
                self.agents.setdefault(username, Counter())[agent] += 1

    def log_request(self, username: str, route: str, start: float, end: float) -> None:
        with self.lock:
            self.requests.add(username, route, start, end)

    def take_hold(self, username: str) -> float:
        with self.lock:
            return self.requests.take_hold(username)

    def reset_traffic(self) -> None:
        with self.lock:
            self.requests.clear()
            self.clients.clear()
            self.agents.clear()
            self._arrivals.clear()
            self.peak_per_second = 0

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

    def risk_passes(self, sess: Session, route: str, token: str, ua: str, fp: str, rckk: str, etag: str) -> bool:
        """The route's Anti-Content policy holds for this request (a failure is counted by its reason)."""
        with self.lock:
            verdict = self.risk.check(route, token, build=self.settings.build, server_ms=int(self.clock.now() * 1000),
                                      ua=ua, fp=fp, rckk=rckk, rng=self.rng, etag=etag)
            if not verdict.ok:
                self.stats[f"risk:{verdict.reason}"] += 1
            return verdict.ok

    def api_captcha(self, sess: Session, tokens: list[str], signed: bool = False, risk_ok: bool = True) -> str | None:
        """None when the business call may go on, else a new verifyAuthToken to answer 54001 with.

        A request carrying a token a human passed within 10 min (header `verifyauthtoken` or the cookie
        `mms-mobile-captcha-cookie-token`) goes on.
        """
        with self.lock:
            armed = None in self.api_captcha_armed or sess.username in self.api_captcha_armed
            unsigned = not signed and (None in self.api_captcha_unsigned or sess.username in self.api_captcha_unsigned)
            if not armed and not unsigned and risk_ok:
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
            statuses = body.get(STATUS_FILTER)  # the status filter (退款成功 = 5): the field name is assumed
            if statuses:
                wanted = {int(c) for c in statuses}
                rows = [i for i in rows if i.status()[0] in wanted]
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
            counts = it.counts(self.shop_items(mall_id), self.clock.now())
            for raw in self.arrivals.pop(mall_id, []):  # buyers do not wait for a check to finish
                self.add_item(mall_id, raw)
            return counts

    def add_item(self, mall_id: int, raw: Mapping[str, Any]) -> int:
        """A new item (scenario form) in the shop, now."""
        with self.lock:
            item = it.item_from_scenario(raw, self.clock.now())
            if any(item.id in s.items for s in self.shops.values()):
                raise ValueError(f"duplicate item id {item.id}")
            self.shops[mall_id].items[item.id] = item
            return item.id

    def wait_handle_count(self, mall_id: int) -> dict[str, int]:
        """queryWaitHandleCount: the four 「售后数据」 header counters by their result keys."""
        with self.lock:
            return it.wait_handle_counts(self.shop_items(mall_id), self.clock.now(), self.shops[mall_id].tickets)
