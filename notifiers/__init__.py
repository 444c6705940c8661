"""Notification channels (WeCom robot and app, DingTalk, Feishu, email, Apprise) behind one Notifier interface;
independent of `agent`."""

from __future__ import annotations

from notifiers.apprise_urls import AppriseUrls
from notifiers.base import Message, Notifier, NotifyError, PermanentError, RateLimitedError, RetryableError
from notifiers.dingtalk import DingTalkRobot
from notifiers.feishu import FeishuBot
from notifiers.mail import SmtpMailer, build_email
from notifiers.wecom import WeComRobot
from notifiers.wecom_app import WeComApp

REGISTRY: dict[str, type[Notifier]] = {
    "wecom": WeComRobot, "wecom_app": WeComApp, "dingtalk": DingTalkRobot, "feishu": FeishuBot, "email": SmtpMailer,
    "apprise": AppriseUrls,
}
Notifier.types.update(REGISTRY)

__all__ = [
    "REGISTRY",
    "AppriseUrls",
    "DingTalkRobot",
    "FeishuBot",
    "Message",
    "Notifier",
    "NotifyError",
    "PermanentError",
    "RateLimitedError",
    "RetryableError",
    "SmtpMailer",
    "WeComApp",
    "WeComRobot",
    "build_email",
]
