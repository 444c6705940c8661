"""Typed results of a shop check: pending items (after-sales and evidence), findings and failure states. Pure data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol


class ShopState(StrEnum):
    """Why a shop could not be read. The rules (core.rules) tell a human once per state."""

    OK = "ok"
    SMS_REQUIRED = "sms_required"  # a new device needs the SMS code: `pdd-agent login`
    CAPTCHA = "captcha"  # a login captcha, or 54001 on a read: `pdd-agent login --headed`
    LOGIN_REQUIRED = "login_required"  # QR-only account, or the password was refused / missing
    LOGIN_BLOCKED = "login_blocked"  # PDD refuses this login (risk, blocked shop): a person must act first
    LAYOUT_CHANGED = "layout_changed"  # a selector or field did not match: `pdd-agent doctor`
    RATE_LIMITED = "rate_limited"  # HTTP 429 / 操作太过频繁 after backing off
    BACKEND_ERROR = "backend_error"  # an unexpected answer from the backend
    TIMEOUT = "timeout"
    BROWSER_ERROR = "browser_error"  # Chromium could not be started or crashed twice


class CheckFailure(Exception):
    """A typed, explained failure of one shop's check. `detail` names what did not match."""

    def __init__(self, state: ShopState, detail: str) -> None:
        super().__init__(f"{state.value}: {detail}")
        self.state = state
        self.detail = detail


class CaptchaRequired(CheckFailure):
    """A business API answered 54001: PDD wants a human to pass a captcha before it answers again."""

    def __init__(self, detail: str, token: str | None = None) -> None:
        super().__init__(ShopState.CAPTCHA, detail)
        self.token = token


ItemKind = Literal["aftersale", "evidence"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One pending item with its deadline: an after-sale waiting for the merchant (`kind` "aftersale", the
    automatic-refund deadline) or evidence owed after the platform intervened ("evidence", the 举证 deadline).
    The one shape from parsing through the rules and the alerts to JSON. Buyer text is raw here: render escapes."""

    kind: ItemKind
    id: str
    order_sn: str
    type: str  # 仅退款 / 退货退款 / 换货 / 补寄
    status: str  # afterSalesTitle, e.g. 「买家申请退款，待商家处理」
    reason: str
    goods_name: str
    refund_amount_fen: int
    deadline: datetime
    remaining_seconds: int
    goods_spec: str = ""
    order_amount_fen: int = 0
    created_at: datetime | None = None
    expire_action: str = ""
    actions: tuple[int, ...] = ()
    overdue: bool = False  # remaining 0 with a description: 「已逾期」, the refund may come any moment
    complaint: bool = False  # on the 投诉预警 card: the buyer may complain to the platform
    urged: bool = False  # on the 买家催处理 card: 「买家已催」
    quality_risk: bool = False  # its reason counts toward the 品质退款率 (selectors [quality] / [watch])

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (ISO datetimes); `Item.from_json` reverses it."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d.update(deadline=self.deadline.isoformat(timespec="seconds"), actions=list(self.actions),
                 created_at=self.created_at.isoformat(timespec="seconds") if self.created_at else None)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Item:
        """From `to_json` (also the shorter item of alerts queued by earlier versions: missing fields default)."""
        kw = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        kw["deadline"] = datetime.fromisoformat(d["deadline"])
        kw["created_at"] = datetime.fromisoformat(d["created_at"]) if d.get("created_at") else None
        kw["actions"] = tuple(d.get("actions") or ())
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class Finding:
    """A consistency observation of one check (rows vs total, counters vs items, countdown vs API)."""

    kind: str
    message: str


class OpenLogin(Protocol):
    """A shop's QR login page a check left open, so the QR pushed to the team can still be scanned."""

    async def wait(self, timeout: float, on_new_qr: Callable[[bytes], Awaitable[None]]) -> None: ...
    async def close(self) -> None: ...


@dataclass(slots=True)
class ShopResult:
    """Everything one check of one shop produced."""

    name: str
    checked_at: datetime
    state: ShopState = ShopState.OK
    error: str | None = None
    mode: str = ""  # "page" or "api"
    aftersales: list[Item] = field(default_factory=list)  # kind "aftersale"
    evidence: list[Item] = field(default_factory=list)  # kind "evidence"
    platform: list[Item] = field(default_factory=list)  # on 平台处理中 (kind "evidence"; a deadline only if owed)
    findings: list[Finding] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    qr_png: bytes | None = None  # the login QR when the shop needs a human (login_required)
    open_login: OpenLogin | None = None  # its page, still open, when the checker was asked to hold QR logins
    duration: float = 0.0  # seconds the check worked (waiting for a browser slot not included)
    began: float = 0.0  # our clock (Unix s, never the backend's) when that work began; 0: not started
    crowded: bool = False  # the host had more work than its budget and lanes take at once when it began
    money: dict[str, Any] | None = None  # `check` only: yesterday's refunds not agreed by the merchant, 补款 (JSON)
    changed: bool = True  # set when recorded: an item came, went, moved its deadline or stage, or an alert was queued

    @property
    def ok(self) -> bool:
        return self.state is ShopState.OK

    def to_json(self) -> dict[str, Any]:
        """The shop's part of `check --json`."""
        return {
            "name": self.name, "ok": self.ok, "error": None if self.ok else f"{self.state.value}: {self.error}",
            "state": self.state.value, "mode": self.mode or None,
            "findings": [{"kind": f.kind, "message": f.message} for f in self.findings], "counters": self.counters,
            "aftersales": [i.to_json() for i in self.aftersales], "evidence": [i.to_json() for i in self.evidence],
            "platform": [i.to_json() for i in self.platform],
            **({"money": self.money} if self.money is not None else {}),
        }
