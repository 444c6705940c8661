"""`pdd-agent notify-test`: send one test message through a configured channel and print its answer."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.cli.loading import load_or_report
from notifiers.base import Message, Notifier, NotifyError


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
    message = Message(title=title, markdown=f"### {title}\n{body}", text=f"{title}\n{body}",
                      html=f"<h3>{title}</h3><p>{body}</p>")

    async def send() -> str:
        notifier = Notifier.from_config(cfg.table())
        try:
            return await notifier.send(message)
        finally:
            await notifier.aclose()

    try:
        answer = asyncio.run(send())
    except NotifyError as exc:  # its text never holds the key or password
        kind = "可重试 / retryable" if exc.__class__.__name__ == "RetryableError" else "永久 / permanent"
        print(f"发送失败（{kind}）/ send failed: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"渠道配置无效 / channel misconfigured: {exc}", file=sys.stderr)
        return 2
    print(f"已发送 / sent via {channel} ({cfg.type}): {answer}")
    return 0
