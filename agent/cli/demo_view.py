"""The demo's view of what the team receives: a local SMTP inbox, and WeCom / email messages drawn for a terminal."""

from __future__ import annotations

import html
import re
import socket
import threading
from datetime import datetime, tzinfo
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from agent.cli.qr_view import png_to_terminal
from agent.sandbox.wecom import Received

# ---- the local inbox (a real SMTP server on loopback) --------------------------------------------------------


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _InboxHandler:
    def __init__(self, inbox: LocalInbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        parsed = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))  # SMTP's CRLF
        assert isinstance(parsed, EmailMessage)
        self.inbox._put(parsed)
        return "250 OK: delivered to the demo inbox"


class LocalInbox:
    """An SMTP server on 127.0.0.1 (no AUTH, no TLS) that keeps every mail it receives, parsed, in order."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._cond = threading.Condition()
        self._pending: list[EmailMessage] = []
        self._count = 0
        self._controller: Controller | None = None

    def start(self) -> LocalInbox:
        if self._controller is not None:
            return self
        requested, last_error = self.port, None
        for _ in range(5):  # a port picked by binding to 0 can be taken by someone else before aiosmtpd binds it
            port = requested or _free_port(self.host)
            controller = Controller(_InboxHandler(self), hostname=self.host, port=port, server_hostname="localhost")
            try:
                controller.start()
            except OSError as exc:
                last_error = exc
                if requested:
                    break
                continue
            self._controller, self.port = controller, port
            return self
        raise OSError(f"本地收件服务器无法在 {self.host} 上启动：{last_error}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> LocalInbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _put(self, msg: EmailMessage) -> None:
        with self._cond:
            self._pending.append(msg)
            self._count += 1
            self._cond.notify_all()

    @property
    def count(self) -> int:
        """How many mails arrived since start (taken or not)."""
        with self._cond:
            return self._count

    def take(self) -> list[EmailMessage]:
        """The mails received since the last take, oldest first."""
        with self._cond:
            out, self._pending = self._pending, []
            return out

    def wait(self, n: int = 1, timeout: float = 5.0) -> bool:
        """Block until at least `n` mails are waiting to be taken; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._pending) >= n, timeout)


# ---- messages as the group and the inbox show them --------------------------------------------------------------

_RESET, _BOLD, _UNBOLD, _FG_OFF = "\x1b[0m", "\x1b[1m", "\x1b[22m", "\x1b[39m"
_FONT = {"warning": "\x1b[33m", "comment": "\x1b[90m", "info": "\x1b[32m"}
_BLUE, _CYAN, _GREY = "\x1b[34m", "\x1b[36m", "\x1b[90m"
_TOKEN = re.compile(r'(`[^`\n]*`|\[[^\]\n]*\]\([^)\s]*\)|<font color="\w+">|</font>|\*\*)')
_LINK = re.compile(r"\[([^\]\n]*)\]\(([^)\s]*)\)")
_HEADING = re.compile(r"^#{1,6}\s+")
_QUOTE = re.compile(r"^>\s?")


def mask_mobile(mobile: str) -> str:
    """「13800000000」 → 「138****0000」; 「@all」 → 「所有人」."""
    mobile = mobile.strip()
    if mobile.lower() == "@all":
        return "所有人"
    if len(mobile) >= 8:
        return mobile[:3] + "*" * (len(mobile) - 7) + mobile[-4:]
    return "*" * max(0, len(mobile) - 2) + mobile[-2:]


def _inline(text: str, color: bool) -> str:
    out: list[str] = []
    bold = False
    for tok in _TOKEN.split(text):
        if not tok:
            continue
        if tok == "**":
            bold = not bold
            out.append((_BOLD if bold else _UNBOLD) if color else "")
        elif tok.startswith("<font"):
            out.append(_FONT.get(tok.split('"')[1], "") if color else "")
        elif tok == "</font>":
            out.append(_FG_OFF if color else "")
        elif tok.startswith("`") and len(tok) >= 2:
            out.append(f"{_CYAN}{tok[1:-1]}{_FG_OFF}" if color else tok)
        elif (link := _LINK.fullmatch(tok)) is not None:
            label, url = link.groups()
            out.append(f"{_BLUE}{label}{_FG_OFF} {_GREY}({url}){_FG_OFF}" if color else f"{label} ({url})")
        else:
            out.append(tok)
    if bold and color:
        out.append(_UNBOLD)
    return "".join(out)


def markdown_to_terminal(markdown: str, color: bool) -> str:
    """WeCom markdown for a terminal: headings and **bold** bold, font colours as ANSI, `> ` as a bar, links with
    their URL. Without `color` every style is dropped and only the text is left."""
    lines = []
    for line in markdown.split("\n"):
        if _HEADING.match(line):
            body = _inline(_HEADING.sub("", line), color)
            lines.append(f"{_BOLD}{body}{_UNBOLD}" if color else body)
        elif _QUOTE.match(line):
            bar = f"{_GREY}│{_FG_OFF} " if color else "│ "
            lines.append(bar + _inline(_QUOTE.sub("", line), color))
        else:
            lines.append(_inline(line, color))
    return "\n".join(lines)


def _frame(title: str, body: str, color: bool) -> str:
    head = f"── {title} ──"
    indented = "\n".join(("  " + line) if line else "" for line in body.split("\n"))
    return f"{_CYAN}{head}{_RESET}\n{indented}" if color else f"{head}\n{indented}"


def wecom_text(msg: Received, color: bool, *, robot: str = "售后提醒机器人", tz: tzinfo | None = None,
               invert: bool = False) -> str:
    """One robot message as the WeCom group shows it; an image is drawn with `png_to_terminal(…, invert)`."""
    when = datetime.fromtimestamp(msg.time, tz).strftime("%H:%M")
    if msg.msgtype == "markdown":
        body = markdown_to_terminal(msg.content, color)
    elif msg.msgtype == "image":
        label = "[图片] 登录二维码"
        try:
            body = f"{label}\n{png_to_terminal(msg.image or b'', invert=invert)}"
        except ValueError as exc:
            body = f"{label}（无法在终端显示：{exc}）"
    else:
        at = [f"@{mask_mobile(m)}" for m in msg.mentioned_mobile_list]
        at += ["@所有人" if u == "@all" else f"@{u}" for u in msg.mentioned_list]
        mentions = " ".join(dict.fromkeys(at))
        if mentions and color:
            mentions = f"{_BLUE}{mentions}{_FG_OFF}"
        body = msg.content + (f"\n{mentions}" if mentions else "")
    return _frame(f"企业微信群 · {robot} {when}", body, color)


_BREAK = re.compile(r"<\s*(br|/p|/div|/h[1-6]|/li|/tr|/title)\s*/?>", re.IGNORECASE)
_HIDDEN = re.compile(r"<(style|script|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def html_to_text(markup: str) -> str:
    """An HTML body as plain text: line breaks kept, tags dropped, entities unescaped, blank runs squeezed."""
    text = _TAG.sub("", _BREAK.sub("\n", _HIDDEN.sub("", markup)))
    lines = [" ".join(html.unescape(line).split()) for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def email_text(msg: EmailMessage, color: bool) -> str:
    """One mail as an inbox shows it: sender, recipients, subject, then the plain-text body (or the HTML's text)."""
    def field(name: str) -> str:
        value = msg.get(name)
        return " ".join(str(value).split()) if value is not None else ""

    subject = field("Subject") or "（无主题）"
    heads = [("发件人", field("From")), ("收件人", field("To")), ("主题", subject)]
    lines = [f"{label}：{_BOLD + value + _UNBOLD if color and label == '主题' else value}" for label, value in heads]
    body = ""
    part = msg.get_body(preferencelist=("plain",))
    if part is not None:
        body = str(part.get_content()).replace("\r\n", "\n").strip("\n")
    else:
        part = msg.get_body(preferencelist=("html",))
        if part is not None:
            body = html_to_text(str(part.get_content()))
    return _frame("邮箱 · 收件箱", "\n".join([*lines, "", body or "（正文为空）"]), color)
