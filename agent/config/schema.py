"""The admin's TOML configuration as frozen dataclasses: every key, its default and its check; secrets by env name."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.config.channels import check_channel
from agent.config.crontab import cron_trigger
from agent.config.durations import parse_duration, seconds
from agent.config.toml_lines import KeyPath

# The schema IS the frozen dataclasses below. Each field is a TOML key; its annotation is the expected type
# (str, int, float, bool, Path, `X | None` where "" means None, a config dataclass = a [table],
# tuple[Dataclass, ...] = an array of [[tables]]); its default is the default (relative paths resolve against
# the config file's folder). `_key(default, check, min_items=, unique=)` adds a validator and array rules.
# To add a table: write a frozen dataclass and add a field of that type (or a tuple of it) to `Config`.



class ConfigError(ValueError):
    """A bad config; each line of the message is `file:line: key.path: problem (中文提示)`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _show(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False, default=str)
    return s if len(s) <= 60 else s[:57] + "..."


class _Bad(ValueError):
    """One value is wrong; the walker adds file, line and key path."""


def _key(default: Any = dataclasses.MISSING, check: Callable[[Any], Any] | None = None, *,
         min_items: int = 0, unique: str = "") -> Any:
    """A schema field: `check` returns the (normalized) value or raises _Bad; array rules for [[tables]]."""
    return field(default=default, metadata={"check": check, "min_items": min_items, "unique": unique})


def _rule(test: Callable[[Any], Any], why: str, norm: Callable[[Any], Any] = lambda v: v) -> Callable[[Any], Any]:
    """A `check` for `_key`: normalize with `norm`, then fail with `why` ({v}: the value) unless `test` holds."""
    def check(value: Any) -> Any:
        value = norm(value)
        if not test(value):
            raise _Bad(why.format(v=_show(value)))
        return value
    return check


def _is_zone(name: str) -> bool:
    try:
        return bool(ZoneInfo(name))
    except (ZoneInfoNotFoundError, ValueError):
        return False


_NONEMPTY = _rule(bool, "must not be empty (不能为空)", str.strip)
def _http_url_ok(v: str) -> bool:
    """http(s), a host, and a port (when given) from 1 to 65535."""
    try:
        u = urlsplit(v)
        port = u.port  # ValueError when it is not a number from 0 to 65535
    except ValueError:
        return False
    return u.scheme in ("http", "https") and bool(u.hostname) and port != 0


_HTTP_URL = _rule(_http_url_ok, 'expected an http(s) URL with a host (and a port from 1 to 65535) such as '
                  '"https://mms.pinduoduo.com", got {v} (网址无效)', lambda v: v.strip().rstrip("/"))
_TIMEZONE = _rule(_is_zone, 'unknown time zone {v}; use a name such as "Asia/Shanghai" (无效的时区)')
_LOG_LEVEL = _rule(lambda v: v in ("DEBUG", "INFO", "WARNING", "ERROR"),
                   "expected one of DEBUG, INFO, WARNING, ERROR, got {v} (无效的日志级别)", str.upper)
_ENV_NAME = _rule(lambda v: not v or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v),  # never echoes: may be a password
                  "expected the NAME of an environment variable (e.g. PDD_PASSWORD_SHOP1), not the password "
                  "itself (应填写环境变量名，而不是密码)")


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """[agent]: where the agent keeps its data and how it paces itself."""

    timezone: str = _key("Asia/Shanghai", _TIMEZONE)
    data_dir: Path = Path("data")  # sessions, state, captures
    selectors_dir: Path | None = None  # admin overrides of selectors/*.toml
    # pause between backend requests; the caller applies ±30 % jitter
    pacing_seconds: float = _key(1.0, _rule(lambda v: v >= 0, "must be 0 or more, got {v} (不能为负数)"))
    # waits before retrying a rate-limited request (HTTP 429), one per retry; a 54001 captcha is never retried
    rate_limit_backoff: tuple[float, ...] = _key(
        (5.0, 15.0, 45.0), _rule(lambda v: all(x >= 0 for x in v), "waits must be 0 or more (不能为负数)")
    )
    # after an SMS / captcha / login-required stop, checks only verify the saved session (a human may have run
    # `pdd-agent login`) and try the password again after this many hours: repeated attempts invite risk control
    login_retry_hours: float = _key(6.0, _rule(lambda v: v >= 0, "must be 0 or more, got {v} (不能为负数)"))
    log_level: str = _key("INFO", _LOG_LEVEL)
    # `pdd-agent run` answers /healthz and /metrics on this port (loopback unless health_host says otherwise)
    health_port: int | None = _key(None, _rule(lambda v: v is None or 1 <= v <= 65535,
                                               "expected a port 1 to 65535, got {v} (端口无效)"))
    health_host: str = "127.0.0.1"
    # every backend request of every shop shares this budget (a token bucket across the host), on top of each
    # shop's pacing; a rate-limit answer slows the whole host down for a while
    max_requests_per_second: float = _key(10.0, _rule(lambda v: 0 < v <= 1000, "must be more than 0 and at most "
                                                                               "1000, got {v} (取值超出范围)"))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, kw_only=True)
class BrowserConfig:
    """[browser]: the Chromium the agent drives."""

    executable_path: str = ""  # empty: find one (agent.browser.chromium)
    headless: bool = True
    # page work at once (logins, page-mode reads, QR pages, doctor): each page costs memory; default 2
    max_pages: int | None = _key(None, _rule(lambda v: v is None or 1 <= v <= 16,
                                             "must be 1 to 16, got {v} (取值超出范围)"))
    # request-only checks at once (API mode, keep-alive): no page, a context each; never wait for page work
    max_concurrent_checks: int = _key(100, _rule(lambda v: 1 <= v <= 500, "must be 1 to 500, got {v} (取值超出范围)"))
    # deprecated: the one limit of earlier versions; now read as max_pages
    max_concurrent_shops: int | None = _key(None, _rule(lambda v: v is None or 1 <= v <= 16,
                                                        "must be 1 to 16, got {v} (取值超出范围)"))
    timeout_seconds: float = _key(30.0, _rule(lambda v: v > 0, "must be more than 0, got {v} (必须大于 0)"))

    @property
    def pages(self) -> int:
        """Page slots: max_pages, else the deprecated max_concurrent_shops, else 2."""
        return self.max_pages or self.max_concurrent_shops or 2

    def deprecations(self) -> list[str]:
        if self.max_concurrent_shops is None:
            return []
        now = "max_pages wins" if self.max_pages else f"read as max_pages = {self.max_concurrent_shops}"
        return [f"browser.max_concurrent_shops is deprecated ({now}): page work (logins, page-mode reads, QR) "
                "now has [browser] max_pages, request-only checks [browser] max_concurrent_checks "
                f"(= {self.max_concurrent_checks}) (已弃用：请改用 max_pages 和 max_concurrent_checks)"]


def _cron_ok(v: str) -> bool:
    try:
        cron_trigger(v, "UTC")
    except ValueError:
        return False
    return True


def _duration_at_least(v: str, minimum: int) -> bool:
    try:
        return parse_duration(v) >= minimum
    except ValueError:
        return False


_CRON_OR_EMPTY = _rule(lambda v: not v or _cron_ok(v),
                       'expected a 5-field cron such as "*/10 8-23 * * *", got {v} (cron 格式无效)', str.strip)
_DURATION_OR_EMPTY = _rule(lambda v: not v or _duration_at_least(v, 1),
                           'expected a duration such as "10m", or "" for [schedule], got {v} (时长格式无效)',
                           str.strip)
_DURATION_OR_OFF = _rule(lambda v: v in ("", "0") or _duration_at_least(v, 0),
                         'expected a duration such as "25m", or "0" for off, got {v} (时长格式无效)', str.strip)


def mask_url(url: str) -> str:
    """`url` with its user:password replaced by ***, for logs and output."""
    u = urlsplit(url)
    if not (u.username or u.password):
        return url
    return u._replace(netloc="***@" + u.netloc.rpartition("@")[2]).geturl()


def _proxy_ok(v: str) -> bool:
    try:
        u = urlsplit(v)
        port = u.port
    except ValueError:
        return False
    if u.scheme not in ("http", "https", "socks5") or not u.hostname or port is None:
        return False
    return not (u.scheme == "socks5" and (u.username or u.password))  # Chromium cannot log in to SOCKS5


_PROXY = _rule(lambda v: not v or _proxy_ok(v),
               'expected "http://[user:pass@]host:port", "https://…" or "socks5://host:port" (Chromium has no '
               "SOCKS5 login) (代理地址无效)", str.strip)


# the watches beyond the deadlines ([watch]); a shop switches any of them off with `watch_off`
WATCHES = ("complaints", "urged", "quality", "platform", "work_orders", "platform_refunds", "money")
_WATCH_NAMES = _rule(lambda v: set(v) <= set(WATCHES),
                     f"expected names from {list(WATCHES)}, got {{v}} (未知的监控项)")


@dataclass(frozen=True, kw_only=True)
class ShopConfig:
    """One [[shops]] entry: a merchant account on the backend."""

    name: str = _key(check=_NONEMPTY)
    base_url: str = _key("https://mms.pinduoduo.com", _HTTP_URL)
    username: str = _key(check=_NONEMPTY)
    password_env: str = _key("", _ENV_NAME)  # the NAME of the variable holding the password
    enabled: bool = True
    notify: tuple[str, ...] = ()  # this shop's channels; empty: [alerts].notify
    check_interval: str = _key("", _DURATION_OR_EMPTY)  # this shop's own schedule; empty: [schedule]
    check_cron: str = _key("", _CRON_OR_EMPTY)
    # this shop's network identity (店群防关联): its own proxy for pages and requests, user agent and locale
    proxy: str = _key("", _PROXY)  # "http://user:pass@host:port", "socks5://host:port"; empty: direct
    user_agent: str = ""  # empty: Chromium's own, without "Headless"
    locale: str = ""  # empty: zh-CN
    watch_off: tuple[str, ...] = _key((), _WATCH_NAMES)  # [watch] items this shop does without

    def proxy_parts(self) -> tuple[str, str, str] | None:
        """(server without credentials, username, password) of the shop's proxy; None when it has none."""
        if not self.proxy:
            return None
        u = urlsplit(self.proxy)
        return f"{u.scheme}://{u.hostname}:{u.port}", unquote(u.username or ""), unquote(u.password or "")

    @property
    def proxy_shown(self) -> str:
        """The proxy as logs and output may show it: credentials masked."""
        return mask_url(self.proxy)

    def password(self) -> str | None:
        """The password from the environment, read now; None when no variable is named or it is unset/empty."""
        return (os.environ.get(self.password_env) or None) if self.password_env else None


def _durations(values: tuple[str, ...]) -> tuple[str, ...]:
    for v in values:
        try:
            parse_duration(v)
        except ValueError:
            raise _Bad(f'expected durations such as "24h", "30m", got {_show(v)} (时长格式无效)') from None
    if len({parse_duration(v) for v in values}) != len(values) or not values:
        raise _Bad("needs at least one stage, without repeats (至少一个阶段，且不能重复)")
    return values


_DURATION = _rule(lambda v: _duration_at_least(v, 1), 'expected a duration such as "6h", "30m", got {v} (时长格式无效)')
_QUIET = _rule(lambda v: not v or re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", v),
               'expected "HH:MM-HH:MM" such as "23:00-07:30", or "" for none, got {v} (免打扰时段格式无效)', str.strip)
_MOBILE = _rule(lambda v: not v or re.fullmatch(r"\+?\d{5,15}", v), "expected a phone number such as "
                '"13800001234", got {v} (手机号格式无效)', str.strip)


_OPEN_ID = _rule(lambda v: not v or re.fullmatch(r"ou_[0-9a-zA-Z]{8,64}", v), 'expected a Feishu open_id such '
                 'as "ou_7d8a6e6df7621556ce0d21922b676706ccs", got {v} (飞书 open_id 格式无效)', str.strip)

NOTIFIER_TYPES = ("wecom", "wecom_app", "dingtalk", "feishu", "email", "apprise")


@dataclass(frozen=True, kw_only=True)
class AlertsConfig:
    """[alerts]: stages before deadlines, who hears what, quiet hours, health alerts."""

    aftersale_before: tuple[str, ...] = _key(("24h", "6h", "2h", "30m"), _durations)
    evidence_before: tuple[str, ...] = _key(("12h", "4h", "1h"), _durations)
    notify: tuple[str, ...] = ()  # default channels for item alerts
    admin_notify: tuple[str, ...] = ()  # login / captcha / scraper-health messages
    quiet_hours: str = _key("", _QUIET)  # non-urgent messages wait; the last stage never waits
    confirm_handled: bool = True  # 「已处理」 when an alerted item leaves the list before its deadline
    health_cooldown: str = _key("6h", _DURATION)  # the same health alert at most this often
    failure_threshold: int = _key(3, _rule(lambda v: v >= 1, "must be 1 or more, got {v} (必须至少为 1)"))
    # a failing channel is probed again after retry_backoff, doubling up to retry_max (jitter ±20 %); the
    # channel's own hint wins (WeCom 45009: its 60-s window)
    retry_backoff: str = _key("2s", _DURATION_OR_OFF)
    retry_max: str = _key("30s", _DURATION)
    # a channel failing this long: urgent alerts also go out through the shop's other and the admin channels,
    # and the admins hear of it; "0": never
    failover_after: str = _key("2m", _DURATION_OR_OFF)



@dataclass(frozen=True, kw_only=True)
class WatchConfig:
    """[watch]: the losses beyond the two deadlines (投诉预警, 买家催处理, 品质退款, 平台介入, 工单, 平台退款,
    退款核对), each on or off for every shop (a shop's `watch_off` turns one off for it) and routed to chosen channels
    (empty: the shop's own)."""

    complaints: bool = True  # 投诉预警: each new item at once, never held by quiet hours
    urged: bool = True  # 买家催处理: 「买家已催」 on the item's alerts, a notice when an alerted item is urged
    quality: bool = True  # 品质退款风险: a quality-related reason, alerted on first sight
    platform: bool = True  # 平台已介入: one notice per item entering 平台处理中
    work_orders: bool = True  # 24小时内将逾期工单数 above zero, rising, back to zero
    platform_refunds: bool = True  # 24小时内平台同意退款 rising
    money: bool = True  # the digest's 昨日退款损失 / 可联系买家补款 section (the 退款成功 list, read daily)
    quality_reasons: tuple[str, ...] = ()  # empty: selectors/aftersale_list.toml [quality].reasons
    complaints_notify: tuple[str, ...] = ()
    urged_notify: tuple[str, ...] = ()
    quality_notify: tuple[str, ...] = ()
    platform_notify: tuple[str, ...] = ()
    work_orders_notify: tuple[str, ...] = ()
    platform_refunds_notify: tuple[str, ...] = ()
    money_notify: tuple[str, ...] = ()  # set: the money section goes here as its own message, not in the digest
    # the same work-order count is told again at most this often
    cooldown: str = _key("6h", _DURATION)
    # 买家催处理 and 平台处理中 are read again when their count changes or after this long (投诉预警: every check)
    refresh: str = _key("30m", _DURATION_OR_OFF)

    def routes(self) -> dict[str, tuple[str, ...]]:
        return {w: getattr(self, f"{w}_notify") for w in WATCHES}


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """[api]: how the routine check's plain-HTTP requests meet mms's signed header (Anti-Content)."""

    # after a cookie-only call meets 54001 on a host, its calls go signed for this long ("0": try cookie-only each time)
    signing_memory: str = _key("24h", _DURATION_OR_OFF)
    # signer pages at once (one per network identity: a shop's proxy and user agent); 0: no signing at all
    max_signers: int = _key(2, _rule(lambda v: 0 <= v <= 16, "must be 0 to 16, got {v} (取值超出范围)"))
    signer_tokens_per_second: float = _key(50.0, _rule(lambda v: 0 < v <= 500, "must be more than 0 and at most "
                                                                               "500, got {v} (取值超出范围)"))


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    """[schedule]: when shops are checked, sessions kept warm, the outbox sent and the digest queued."""

    check_interval: str = _key("10m", _DURATION)
    check_cron: str = _key("", _CRON_OR_EMPTY)  # set: used instead of check_interval, in [agent].timezone
    jitter: str = _key("60s", _DURATION_OR_OFF)  # each check starts up to this much later (not all shops at once)
    digest_cron: str = _key("0 9 * * *", _CRON_OR_EMPTY)  # the daily digest per shop; "": none
    keepalive_interval: str = _key("25m", _DURATION_OR_OFF)  # a light session visit between checks; "0": off
    dispatch_interval: str = _key("10s", _DURATION)  # the outbox is sent on its own, never waiting for checks
    shutdown_grace: str = _key("60s", _DURATION)  # on SIGTERM the check in flight gets this long to finish
    once_grace: str = _key("60s", _DURATION_OR_OFF)  # `run --once` keeps delivering this long while a channel fails

    def interval_of(self, shop: ShopConfig) -> float:
        """The shop's check interval in seconds (0 when it runs on a cron)."""
        if shop.check_cron or (not shop.check_interval and self.check_cron):
            return 0.0
        return seconds(shop.check_interval or self.check_interval)

    def cron_of(self, shop: ShopConfig) -> str:
        return shop.check_cron or ("" if shop.check_interval else self.check_cron)


@dataclass(frozen=True, kw_only=True)
class NotifierConfig:
    """One [notifiers.NAME] channel: a WeCom group robot or app, a DingTalk or Feishu robot, email, Apprise URLs."""

    type: str = _key(check=_rule(lambda v: v in NOTIFIER_TYPES,
                                 f"expected one of {NOTIFIER_TYPES}, got {{v}} (未知的通知类型)"))
    webhook_url: str = ""  # wecom (its URL or key), dingtalk, feishu: the robot's webhook
    secret: str = ""  # dingtalk (SEC…), feishu: the signing secret (加签 / 签名校验), from ${ENV}
    keyword: str = ""  # dingtalk, feishu: the robot's 自定义关键词, put into every message that lacks it
    mention_mobiles: tuple[str, ...] = ()  # wecom, dingtalk: @ these on the last stage
    mention_open_ids: tuple[str, ...] = ()  # feishu: @ these (open_ids, ou_…) on the last stage
    at_all: bool = False  # dingtalk, feishu: @所有人 on the last stage
    corp_id: str = ""  # wecom_app: 企业ID
    corp_secret: str = ""  # wecom_app: the app's Secret, from ${ENV}
    agent_id: int = 0  # wecom_app: the app's AgentId
    to_users: tuple[str, ...] = ()  # wecom_app: the members' 账号 (userid)
    api_base: str = ""  # wecom_app: "" for https://qyapi.weixin.qq.com (a relay or a test server otherwise)
    urls: tuple[str, ...] = ()  # apprise: its URLs (schan://, pushplus://, bark://, tgram://…), from ${ENV}
    host: str = ""  # email
    port: int = 0  # 0: 465 for ssl, 587 for starttls, 25 for none
    security: str = _key("ssl", _rule(lambda v: v in ("ssl", "starttls", "none"),
                                      'expected "ssl", "starttls" or "none", got {v}'))
    username: str = ""
    password_env: str = _key("", _ENV_NAME)
    sender: str = field(default="", metadata={"toml": "from"})  # empty: the username (providers require it)
    to: tuple[str, ...] = ()
    timeout_seconds: float = _key(15.0, _rule(lambda v: v > 0, "must be more than 0, got {v} (必须大于 0)"))

    def check_fields(self) -> list[tuple[KeyPath, str]]:
        return check_channel(self)

    def password(self) -> str | None:
        return (os.environ.get(self.password_env) or None) if self.password_env else None

    @property
    def smtp_port(self) -> int:
        return self.port or {"ssl": 465, "starttls": 587}.get(self.security, 25)

    def table(self) -> dict[str, Any]:
        """The channel as `Notifier.from_config` takes it: its keys, the password read from the environment now."""
        common = {"type": self.type, "timeout_seconds": self.timeout_seconds}
        if self.type == "email":
            return {**common, "host": self.host, "port": self.smtp_port, "security": self.security,
                    "username": self.username, "password": self.password(), "from": self.sender or self.username,
                    "to": self.to}
        keys = {"wecom": ("webhook_url", "mention_mobiles"),
                "dingtalk": ("webhook_url", "secret", "keyword", "mention_mobiles", "at_all"),
                "feishu": ("webhook_url", "secret", "keyword", "mention_open_ids", "at_all"),
                "wecom_app": ("corp_id", "corp_secret", "agent_id", "to_users", "api_base"),
                "apprise": ("urls",)}[self.type]
        return {**common, **{k: getattr(self, k) for k in keys}}


def _listen_ok(v: str) -> bool:
    host, _, port = v.rpartition(":")
    return bool(host.strip("[]")) and port.isdigit() and 0 <= int(port) <= 65535


_LISTEN = _rule(lambda v: not v or _listen_ok(v),
                'expected "host:port" such as "127.0.0.1:8700" or "0.0.0.0:8700", got {v} (监听地址无效)',
                str.strip)
_PUBLIC_URL = _rule(lambda v: not v or (urlsplit(v).scheme in ("http", "https") and urlsplit(v).hostname),
                    'expected the http(s) address the team\'s phones open, such as "http://192.168.1.20:8700", '
                    'or "" for no links, got {v} (网址无效)', lambda v: v.strip().rstrip("/"))
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    """[web]: the team page (待办, claims, notes) and /healthz, /metrics, served by `pdd-agent run`."""

    # "0.0.0.0:8700" for phones on the LAN (a login is then required); empty: 127.0.0.1:8700, or the deprecated
    # [agent] health_host:health_port when those are set
    listen: str = _key("", _LISTEN)
    public_url: str = _key("", _PUBLIC_URL)  # the address in the alerts' 「认领 / 查看」 links; "": no links
    open_on_loopback: bool = False  # listening on loopback only: the page needs no login (one person)
    session_hours: float = _key(168.0, _rule(lambda v: v > 0, "must be more than 0, got {v} (必须大于 0)"))



DEFAULT_LISTEN = "127.0.0.1:8700"


def split_listen(address: str) -> tuple[str, int]:
    """("host", port) of a "host:port" listen address."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, kw_only=True)
class MemberConfig:
    """One [[team.members]] entry: a person who claims and closes items on the team page."""

    name: str = _key(check=_NONEMPTY)  # shown on the page and in 「已认领：张三」
    mobile: str = _key("", _MOBILE)  # @-ed in the group when an item they claimed reaches a later stage
    feishu_open_id: str = _key("", _OPEN_ID)  # the same in a Feishu group (a Feishu bot cannot @ by phone)
    password_hash: str = ""  # written by `pdd-agent team passwd NAME`; empty: cannot log in yet


@dataclass(frozen=True, kw_only=True)
class TeamConfig:
    """[team]: who may claim items, and what a claim quiets."""

    # while an item is claimed, stages further than this before the deadline are not broadcast
    claimed_quiet_until: str = _key("2h", _DURATION)
    evidence_claimed_quiet_until: str = _key("4h", _DURATION)  # the same for 举证 stages (12h skipped, 4h and 1h sent)
    claim_ttl: str = _key("2h", _DURATION)  # a claim not renewed from the page lapses after this
    note_max_chars: int = _key(500, _rule(lambda v: 1 <= v <= 5000, "must be 1 to 5000, got {v} (取值超出范围)"))
    members: tuple[MemberConfig, ...] = _key((), unique="name")

    def member(self, name: str) -> MemberConfig | None:
        return next((m for m in self.members if m.name == name), None)


def _fernet_key(key: str) -> bool:
    """A Fernet key: 32 bytes in url-safe base64 (checked without the cryptography package)."""
    import base64
    import binascii

    try:
        return len(base64.urlsafe_b64decode(key.strip().encode("ascii"))) == 32
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False


_DB_URL = _rule(lambda v: not v or (urlsplit(v).scheme in ("postgresql", "postgres") and urlsplit(v).hostname),
                'expected "" (one machine, SQLite) or a PostgreSQL URL such as "${{PDD_DATABASE_URL}}" '
                '(postgresql://user:password@host:5432/pdd); the value is not shown, it may hold a password '
                '(数据库地址无效)', str.strip)


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """[cluster]: several nodes sharing the work on one PostgreSQL ("": one machine with its SQLite file)."""

    database_url: str = _key("", _DB_URL)  # from ${ENV}: it holds the database password
    node_name: str = ""  # this node's name in `cluster status`; "": host:pid
    stall_timeout: str = _key("60s", _DURATION)  # a node silent this long: its shops are checked by another
    # the Fernet key(s) the shops' shared sessions are encrypted with, from ${ENV}: "NEW,OLD" while rotating
    session_keys: str = _key("", _rule(lambda v: not v or all(_fernet_key(k) for k in v.split(",")),
                                       "expected one or more Fernet keys separated by commas (generate one with "
                                       "`pdd-agent cluster key`) (会话密钥格式无效)", str.strip))


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole resolved config file."""

    agent: AgentConfig = field(default_factory=AgentConfig)
    browser: BrowserConfig = field(default_factory=BrowserConfig)
    shops: tuple[ShopConfig, ...] = _key((), min_items=1, unique="name")
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    notifiers: dict[str, NotifierConfig] = field(default_factory=dict)
    web: WebConfig = field(default_factory=WebConfig)
    team: TeamConfig = field(default_factory=TeamConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    path: Path = field(default=Path("config.toml"), metadata={"internal": True})  # the file, absolute

    def check_fields(self) -> list[tuple[KeyPath, str]]:
        """Every channel named in [alerts] and [[shops]] must be a [notifiers.NAME] table."""
        out: list[tuple[KeyPath, str]] = []
        refs: list[tuple[KeyPath, tuple[str, ...]]] = [
            (("alerts", "notify"), self.alerts.notify), (("alerts", "admin_notify"), self.alerts.admin_notify),
            *((("shops", i, "notify"), s.notify) for i, s in enumerate(self.shops)),
            *((("watch", f"{w}_notify"), names) for w, names in self.watch.routes().items()),
        ]
        for path, names in refs:
            for name in names:
                if name not in self.notifiers:
                    known = ", ".join(self.notifiers) or "none defined"
                    out.append((path, f"unknown channel {_show(name)}; [notifiers.*] has: {known} (未定义的通知渠道)"))
        if self.cluster.database_url and not self.cluster.session_keys:
            out.append((("cluster", "session_keys"), "required with database_url: the shops' sessions are shared "
                        'encrypted; generate a key with `pdd-agent cluster key`, then session_keys = '
                        '"${PDD_SESSION_KEYS}" (多机运行必须设置会话密钥)'))
        if not self.web_on_loopback() and not any(m.password_hash for m in self.team.members):
            where = ", ".join(self.listen_addresses())
            out.append((("web", "listen"), f"the team page listens beyond loopback ({where})"
                        " and needs a login: add [[team.members]] and run `pdd-agent team passwd NAME` "
                        "(非本机地址必须设置团队成员和密码)"))
        return out

    def deprecations(self) -> list[str]:
        """Keys still read but on their way out, each with what replaces it."""
        out = self.browser.deprecations()
        if self.agent.health_port:
            out.append(f"agent.health_port / agent.health_host are deprecated: {self.agent.health_host}:"
                       f"{self.agent.health_port} still answers /healthz and /metrics, and so does the team page's "
                       f"[web] listen ({self.listen_addresses()[0]}); point monitors there and remove these keys "
                       "(已弃用：/healthz 和 /metrics 已由 [web] listen 提供)")
        return out

    def listen_addresses(self) -> tuple[str, ...]:
        """Where `pdd-agent run` serves the team page, /healthz, /metrics and /api/v1: [web] listen."""
        return (self.web.listen or DEFAULT_LISTEN,)

    def health_addresses(self) -> tuple[str, ...]:
        """The deprecated [agent] health_host:health_port, still answering /healthz and /metrics only (as before)."""
        old = f"{self.agent.health_host}:{self.agent.health_port}" if self.agent.health_port else ""
        return (old,) if old and old not in self.listen_addresses() else ()

    def web_on_loopback(self) -> bool:
        """Every address the page is served on is loopback (then `open_on_loopback` may skip the login)."""
        return all(split_listen(a)[0] in LOOPBACK_HOSTS for a in self.listen_addresses())

    def store_at(self) -> Path | str:
        """Where the store lives: [cluster] database_url (several nodes), else data_dir/agent.db."""
        return self.cluster.database_url or self.agent.data_dir / "agent.db"

    def channels_for(self, shop: ShopConfig) -> tuple[str, ...]:
        return shop.notify or self.alerts.notify

    def watching(self, shop: ShopConfig) -> frozenset[str]:
        """The [watch] items on for this shop."""
        return frozenset(w for w in WATCHES if getattr(self.watch, w) and w not in shop.watch_off)

    def watch_channels(self, shop: ShopConfig, watch: str) -> tuple[str, ...]:
        """Where a [watch] item's notices go: its own channels, else the shop's."""
        return self.watch.routes().get(watch) or self.channels_for(shop)

    def shop(self, name: str) -> ShopConfig | None:
        return next((s for s in self.shops if s.name == name), None)
