"""The sandbox's records and codes: accounts, shops, sessions, login QR tokens, settings, and PDD's answer codes."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.sandbox import items as it

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
    tickets: int = 0  # work orders due within 24 h (「24小时内将逾期工单数」); set by the control API


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
