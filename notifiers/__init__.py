"""Notification channels (WeCom group robot, SMTP email) behind one Notifier interface; independent of `agent`."""

from __future__ import annotations

from notifiers.base import Message, Notifier, NotifyError, PermanentError, RetryableError, SendResult
from notifiers.mail import SmtpMailer, build_email
from notifiers.wecom import WeComRobot

REGISTRY: dict[str, type[Notifier]] = {"wecom": WeComRobot, "email": SmtpMailer}

__all__ = [
    "REGISTRY",
    "Message",
    "Notifier",
    "NotifyError",
    "PermanentError",
    "RetryableError",
    "SendResult",
    "SmtpMailer",
    "WeComRobot",
    "build_email",
]
