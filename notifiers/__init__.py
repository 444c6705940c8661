"""Notification channels (WeCom group robot, SMTP email) behind one Notifier interface; independent of `agent`."""

from __future__ import annotations

from notifiers.base import Message, Notifier, NotifyError, PermanentError, RetryableError
from notifiers.mail import SmtpMailer, build_email
from notifiers.wecom import WeComRobot

REGISTRY: dict[str, type[Notifier]] = {"wecom": WeComRobot, "email": SmtpMailer}
Notifier.types.update(REGISTRY)

__all__ = [
    "REGISTRY",
    "Message",
    "Notifier",
    "NotifyError",
    "PermanentError",
    "RetryableError",
    "SmtpMailer",
    "WeComRobot",
    "build_email",
]
