"""The per-type rules of a [notifiers.NAME] table (pure): required keys, URL schemes, secrets' shapes, mentions."""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agent.config.toml_lines import KeyPath

NotifierConfig = Any  # schema.NotifierConfig, which calls `check_channel` (an import here would be a cycle)

Problems = list[tuple[KeyPath, str]]
_MOBILE = re.compile(r"\+?\d{5,15}")
_OPEN_ID = re.compile(r"ou_[0-9a-zA-Z]{8,64}")
# Apprise schemes this project speaks itself (and Apprise's wecom://, which is PushPlus): what to use instead
APPRISE_REFUSED = {
    "dingtalk": 'type = "dingtalk"', "dingtalks": 'type = "dingtalk"', "feishu": 'type = "feishu"',
    "lark": 'type = "feishu"', "wecombot": 'type = "wecom"', "wxwork": 'type = "wecom"', "wechat": 'type = "wecom_app"',
    "wecom": 'pushplus:// for PushPlus (Apprise\'s wecom:// is PushPlus), or type = "wecom" for a WeCom robot',
}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_problem(url: str, example: str) -> str:
    """Why `url` is not a usable webhook ("" when it is): https, or http to a loopback address only. Never
    repeats the URL (its token is a secret)."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = 0
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        return f"expected a full webhook URL (a host, a port from 1 to 65535) such as {example} (网址无效)"
    if parts.scheme == "http" and not _loopback(parts.hostname):
        return "must use https:// (plain http only to a loopback address) (必须使用 https)"
    return ""


def _required(n: NotifierConfig, *keys: str) -> Problems:
    return [((k,), f"missing (required for type {n.type}) (缺少必填项)") for k in keys if not getattr(n, k)]


def _mobiles(n: NotifierConfig) -> Problems:
    return [(("mention_mobiles",), f"expected phone numbers such as \"13800001234\", got {m!r} (手机号格式无效)")
            for m in n.mention_mobiles if not _MOBILE.fullmatch(m)]


def _webhook(n: NotifierConfig, example: str) -> Problems:
    if not n.webhook_url:
        return _required(n, "webhook_url")
    why = url_problem(n.webhook_url, example)
    return [(("webhook_url",), why)] if why else []


def check_channel(n: NotifierConfig) -> Problems:
    """Every problem of one channel table, each with its key (relative to the table)."""
    out: Problems = []
    if n.type == "wecom":
        if n.webhook_url.startswith(("http://", "https://")):
            out += _webhook(n, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…")
        out += _required(n, "webhook_url") + _mobiles(n)
    elif n.type == "dingtalk":
        out += _webhook(n, "https://oapi.dingtalk.com/robot/send?access_token=…") + _mobiles(n)
        if n.webhook_url and not out and not parse_qs(urlsplit(n.webhook_url).query).get("access_token"):
            out.append((("webhook_url",), "has no ?access_token=… (钉钉机器人地址缺少 access_token)"))
        if n.secret and not n.secret.startswith("SEC"):
            out.append((("secret",), "a DingTalk secret starts with SEC: copy it from the robot's 加签 setting "
                                     "(加签密钥应以 SEC 开头)"))
    elif n.type == "feishu":
        out += _webhook(n, "https://open.feishu.cn/open-apis/bot/v2/hook/…")
        if n.webhook_url and not out and "/hook/" not in urlsplit(n.webhook_url).path:
            out.append((("webhook_url",), "expected …/open-apis/bot/v2/hook/TOKEN (飞书机器人地址无效)"))
        if n.mention_mobiles:
            out.append((("mention_mobiles",), "a Feishu bot cannot @ by phone: use mention_open_ids (ou_…) "
                                              "(飞书机器人只能按 open_id @人)"))
        out += [(("mention_open_ids",), f"expected a Feishu open_id such as \"ou_7d8a6e6d…\", got {o!r} "
                                        "(飞书 open_id 格式无效)")
                for o in n.mention_open_ids if not _OPEN_ID.fullmatch(o)]
    elif n.type == "wecom_app":
        out += _required(n, "corp_id", "corp_secret", "to_users")
        if n.agent_id <= 0:
            out.append((("agent_id",), "missing: the app's AgentId, such as 1000002 (缺少应用 AgentId)"))
        out += [(("to_users",), f"expected a member's 账号 (userid), got {u!r}") for u in n.to_users
                if not u.strip() or "|" in u or u == "@all"]
        if n.api_base and (why := url_problem(n.api_base, "https://qyapi.weixin.qq.com")):
            out.append((("api_base",), why))
    elif n.type == "email":
        if not n.host:
            out.append((("host",), "missing (required for type email) (缺少必填项)"))
        if not n.to:
            out.append((("to",), "needs at least one address (至少一个收件人)"))
        if not (n.sender or n.username):
            out.append((("from",), "missing: set from or username (缺少发件人)"))
    elif n.type == "apprise":
        if importlib.util.find_spec("apprise") is None:
            out.append((("type",), "needs the optional Apprise package: pip install 'pdd-agent[apprise]' "
                                   "(未安装 Apprise)"))
        if not n.urls:
            out.append((("urls",), "needs at least one Apprise URL such as \"${PUSHPLUS_URL}\" (至少一个地址)"))
        for u in n.urls:
            scheme = u.strip().partition("://")[0].lower()
            if scheme in APPRISE_REFUSED:
                out.append((("urls",), f"{scheme}:// is not sent through Apprise here: use {APPRISE_REFUSED[scheme]}"
                                       " (该渠道请使用本项目自带的类型)"))
            elif "://" not in u:
                out.append((("urls",), "expected an Apprise URL such as pushplus://TOKEN (地址无效)"))
    return out
