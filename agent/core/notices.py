"""Alerts about the agent's own delivery, logins and config (pure): a channel broken, failing or back, a login QR
renewed, a config reload refused."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from agent.core.rules import Alert, Severity

ChannelEvent = Literal["channel_broken", "channel_failing", "channel_recovered"]


def _notice(key: str, shop: str, event: str, severity: Severity, detail: str, at: datetime,
            attach_qr: bool = False) -> Alert:
    return Alert(key=key, shop=shop, kind="health", severity=severity, created_at=at, event=event, state=event,
                 detail=detail, attach_qr=attach_qr)


def channel_broken(channel: str, shop: str, reason: str, at: datetime) -> Alert:
    """The channel refused a message for good (a wrong key, a refused login): the admins must fix the config."""
    return _notice(f"{shop}:health:channel_broken:{channel}:{int(at.timestamp())}", shop, "channel_broken",
                   "critical", f"通知渠道 {channel} 无法发送（{reason}），请检查配置", at)


def channel_failing(channel: str, shop: str, failing_for: float, last_error: str, at: datetime) -> Alert:
    """The channel has failed longer than failover_after: urgent alerts now go through the other channels."""
    return _notice(f"{shop}:health:channel_failing:{channel}:{int(at.timestamp())}", shop, "channel_failing",
                   "critical", f"通知渠道 {channel} 已连续发送失败 {int(failing_for)} 秒（{last_error}），"
                               "紧急提醒改由其他渠道发送", at)


def channel_recovered(channel: str, shop: str, failures: int, at: datetime) -> Alert:
    """A channel whose failure was announced delivers again: what it owed is being sent."""
    return _notice(f"{shop}:health:channel_recovered:{channel}:{int(at.timestamp())}", shop, "channel_recovered",
                   "info", f"通知渠道 {channel} 已恢复，积压的提醒正在补发（失败 {failures} 次）", at)


def qr_renewed(shop: str, at: datetime) -> Alert:
    """The login QR pushed before expired and the page renewed it: the new image goes to the admins."""
    return _notice(f"{shop}:health:login_required:qr{int(at.timestamp())}", shop, "login_required", "critical",
                   "登录二维码已过期，已更换为新的二维码", at, attach_qr=True)


def config_refused(shop: str, problems: str, at: datetime, digest: str) -> Alert:
    """A reload found the config file broken: the service goes on with the previous config until it is fixed."""
    first = problems.splitlines()[0] if problems else ""
    more = len(problems.splitlines()) - 1
    tail = f"（另有 {more} 处问题）" if more > 0 else ""
    return _notice(f"{shop}:health:config_refused:{digest}", shop, "config_refused", "critical",
                   f"配置文件重新加载失败，仍按原配置运行：{first}{tail}", at)
