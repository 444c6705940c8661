"""`pdd-agent notify-test`: send one test message through a configured channel and print its answer."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.cli.loading import load_or_report
from agent.core import markup
from notifiers.base import Message, Notifier, NotifyError, RateLimitedError, RetryableError


def main(config_path: str, channel: str) -> int:
    config = load_or_report(config_path)
    if config is None:
        return 2
    cfg = config.notifiers.get(channel)
    if cfg is None:
        known = ", ".join(config.notifiers) or "none"
        print(f"没有这个通知渠道 / no channel {channel!r}; [notifiers.*] has: {known}", file=sys.stderr)
        return 2
    now = datetime.now(ZoneInfo(config.agent.timezone)).strftime("%Y-%m-%d %H:%M:%S")
    title = f"pdd-agent 测试消息 / test message ({channel})"
    body = f"这是一条来自 pdd-agent 的测试消息，发送时间 {now}。收到即表示渠道「{channel}」配置正确。"
    try:
        notifier = Notifier.from_config(cfg.table())
    except ValueError as exc:
        print(f"渠道配置无效 / channel misconfigured: {exc}", file=sys.stderr)
        return 2
    blocks = [[[("t", body)]]]
    message = Message(title=title, markdown=markup.body("wecom", title, blocks),
                      text=markup.body("text", title, blocks), html=markup.page(title, [markup.html_escape(body)]),
                      body=markup.body(notifier.dialect, title, blocks) if notifier.dialect != "text" else "")

    async def send() -> str:
        try:
            return await notifier.send(message)
        finally:
            await notifier.aclose()

    try:
        answer = asyncio.run(send())
    except NotifyError as exc:  # its text never holds the key or password
        kind = ("限流 / rate-limited" if isinstance(exc, RateLimitedError) else
                "可重试 / retryable" if isinstance(exc, RetryableError) else "永久 / permanent")
        print(f"发送失败（{kind}）/ send failed: {exc}", file=sys.stderr)
        return 1
    verdict = "已发送 / sent" if notifier.verified else "已提交，未确认送达 / sent, unverified"
    print(f"{verdict} via {channel} ({cfg.type}): {answer}")
    return 0
