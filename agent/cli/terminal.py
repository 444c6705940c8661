"""Text for a terminal: untrusted text cleaned, widths of CJK cells, tables, times, and what each shop state needs."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from agent.core.models import ShopState

STATE_LABELS = {
    ShopState.OK.value: "正常",
    ShopState.SMS_REQUIRED.value: "需要短信验证",
    ShopState.CAPTCHA.value: "需要人工验证",
    ShopState.LOGIN_REQUIRED.value: "需要扫码登录",
    ShopState.LOGIN_BLOCKED.value: "登录被平台拦截",
    ShopState.LAYOUT_CHANGED.value: "页面结构变化",
    ShopState.RATE_LIMITED.value: "被限流",
    ShopState.BACKEND_ERROR.value: "后台错误",
    ShopState.TIMEOUT.value: "超时",
    ShopState.BROWSER_ERROR.value: "浏览器错误",
    "unknown": "未检查",
}
HINTS = {
    ShopState.SMS_REQUIRED: "需要短信验证码：请运行 pdd-agent login --shop {shop} --config {config}",
    ShopState.CAPTCHA: "出现安全验证（滑块）：请运行 pdd-agent login --shop {shop} --config {config} --headed",
    ShopState.LOGIN_BLOCKED: "登录被平台拦截：按错误详情处理后运行 pdd-agent login --shop {shop} --config {config}",
    ShopState.LOGIN_REQUIRED: "需要重新登录（扫码或密码）：请运行 pdd-agent login --shop {shop} --config {config}",
    ShopState.LAYOUT_CHANGED: "页面或接口结构变了：请运行 pdd-agent doctor --shop {shop} --config {config}",
    ShopState.RATE_LIMITED: "操作太过频繁（HTTP 429），已退避重试仍失败，稍后会再试",
    ShopState.BACKEND_ERROR: "后台返回异常",
    ShopState.TIMEOUT: "后台响应超时",
    ShopState.BROWSER_ERROR: "浏览器无法启动或崩溃",
}


def clean(text: str, limit: int = 0) -> str:
    """Untrusted text for a terminal or a log line: no control characters, no newlines, optionally cut."""
    out = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text).strip()
    return out if not limit or len(out) <= limit else out[: limit - 1] + "…"


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state)


def cells(text: str) -> int:
    """Terminal width: wide and full-width (CJK) characters take two cells, combining marks none."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - cells(text))


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(cells(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def ago(seconds: float) -> str:
    s = int(max(0.0, seconds))
    if s < 60:
        return "刚刚"
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}天{h}小时前" if h else f"{d}天前"
    return f"{h}小时{m}分钟前" if h else f"{m}分钟前"


def remaining_text(seconds: int) -> str:
    """「1天2小时3分」 style, for the Chinese table."""
    d, rest = divmod(max(0, seconds), 86400)
    h, m = rest // 3600, rest % 3600 // 60
    return (f"{d}天" if d else "") + (f"{h}小时" if d or h else "") + f"{m}分"
