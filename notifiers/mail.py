"""The email notifier: builds multipart text + HTML mail and sends it over SMTP (SSL, STARTTLS or plain).

Chinese providers (QQ, 163, Tencent Exmail, Aliyun) reject mail whose envelope sender or `From` differs from
the login user (`501 mail from address must be same as authorization user`) and check the `From` header
strictly, so `From` is an RFC 5322 address and the password is usually the provider's 授权码 / 客户端专用密码.
Port 465 is implicit TLS (`security = "ssl"`), 587 is STARTTLS. smtplib runs in a worker thread with a
per-operation timeout (it would otherwise block forever); this needs no extra dependency.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl
from collections.abc import Mapping
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any, ClassVar, Literal

from notifiers.base import Message, Notifier, NotifyError, PermanentError, RetryableError, redact, secret_hash

Security = Literal["ssl", "starttls", "none"]
SECURITY_MODES: tuple[str, ...] = ("ssl", "starttls", "none")


def _address(value: str) -> Address:
    name, addr = parseaddr(value)
    if "@" not in addr or any(c.isspace() for c in addr):
        raise ValueError(f"not an email address: {value!r}")
    user, domain = addr.rsplit("@", 1)
    return Address(display_name=name, username=user, domain=domain)


def _one_line(s: str) -> str:
    return " ".join(s.split())


def build_email(
    message: Message,
    *,
    sender: str,
    to: tuple[str, ...],
    date: datetime | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """The email for `message`: multipart/alternative (plain text, then HTML), UTF-8 bodies in base64, the
    image (if any) as a PNG attachment, RFC 2047 subject, `From` = `sender` (the SMTP login user). Pure apart
    from the default date and id."""
    if not to:
        raise ValueError("an email needs at least one recipient")
    from_addr = _address(sender)
    msg = EmailMessage()
    msg["Subject"] = _one_line(message.title)
    msg["From"] = from_addr
    msg["To"] = [_address(t) for t in to]
    msg["Date"] = format_datetime(date or datetime.now().astimezone())
    msg["Message-ID"] = message_id or make_msgid(domain=from_addr.domain)
    msg["MIME-Version"] = "1.0"
    msg.set_content(message.text, charset="utf-8", cte="base64")
    msg.add_alternative(message.html, subtype="html", charset="utf-8", cte="base64")
    if message.image_png is not None:  # the login QR code the text says to scan
        msg.add_attachment(message.image_png, maintype="image", subtype="png", filename="pdd-login-qr.png")
    return msg


class SmtpMailer(Notifier):
    """Sends each Message as one email to `to` through one SMTP account."""

    kind: ClassVar[str] = "email"
    max_bytes: ClassVar[int | None] = None
    images: ClassVar[bool] = True

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> SmtpMailer:
        """From a table with `host`, `port`, `security`, `username`, `password`, `from` (else the username),
        `to` and `timeout_seconds`."""
        username = str(table.get("username") or "")
        return cls(str(table["host"]), int(table["port"]), table.get("security", "ssl"), username or None,
                   table.get("password") or None, str(table.get("from") or username), tuple(table["to"]),
                   float(table.get("timeout_seconds") or 15))

    def __init__(
        self,
        host: str,
        port: int,
        security: Security,
        username: str | None,
        password: str | None,
        sender: str,
        to: tuple[str, ...] | list[str],
        timeout: float = 15,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {', '.join(SECURITY_MODES)}, not {security!r}")
        self.host = host
        self.port = int(port)
        self.security = security
        self.username = username or None
        self._password = password or ""
        self.sender = sender
        self.to = tuple(to)
        self.timeout = timeout
        self._ssl_context = ssl_context
        self._from_addr = _address(sender).addr_spec
        if not self.to:
            raise ValueError("an email notifier needs at least one recipient in `to`")
        for t in self.to:
            _address(t)
        self.rate_key = "email:" + secret_hash(self.host, str(self.port), self.username or "")

    def __repr__(self) -> str:
        return f"SmtpMailer({self.security}://{self.username or ''}@{self.host}:{self.port} -> {', '.join(self.to)})"

    async def send(self, message: Message) -> str:
        msg = build_email(message, sender=self.sender, to=self.to)
        return await asyncio.to_thread(self._send_blocking, msg)

    # ---- blocking part (worker thread) ---------------------------------------------------------
    def _send_blocking(self, msg: EmailMessage) -> str:
        try:
            return self._deliver(msg)
        except NotifyError:
            raise
        except Exception as exc:
            raise self._classify(exc) from None

    def _deliver(self, msg: EmailMessage) -> str:
        ctx = self._ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ctx)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=ctx)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self._password)
            code, resp = smtp.mail(self._from_addr)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, resp, self._from_addr)
            refused: dict[str, tuple[int, bytes]] = {}
            for rcpt in self.to:
                code, resp = smtp.rcpt(_address(rcpt).addr_spec)
                if code not in (250, 251):
                    refused[rcpt] = (code, resp)
            if len(refused) == len(self.to):
                raise smtplib.SMTPRecipientsRefused(refused)
            code, resp = smtp.data(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
            if code != 250:
                raise smtplib.SMTPDataError(code, resp)
        answer = f"{code} {resp.decode('utf-8', 'replace')}"
        if refused:  # delivered to the others: not retried, or they would get it twice
            answer += "; refused: " + ", ".join(f"{r} ({c})" for r, (c, _) in refused.items())
        return self._clean(answer)

    def _classify(self, exc: BaseException) -> NotifyError:
        name = type(exc).__name__
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = [c for c, _ in exc.recipients.values()]
            detail = self._clean("recipients refused: " + "; ".join(
                f"{r}: {c} {m.decode('utf-8', 'replace')}" for r, (c, m) in exc.recipients.items()
            ))
            worst = max(codes) if codes else 550
            if all(c >= 500 for c in codes):
                return PermanentError(f"smtp {worst}", detail)
            return RetryableError(f"smtp {min(codes)}", detail)
        if isinstance(exc, smtplib.SMTPResponseException):  # auth, sender refused, data, helo
            err = exc.smtp_error
            text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
            detail = self._clean(f"{name}: {exc.smtp_code} {text}")
            if 400 <= exc.smtp_code < 500 or exc.smtp_code < 0:
                return RetryableError(f"smtp {exc.smtp_code}", detail)
            return PermanentError(f"smtp {exc.smtp_code}", detail)
        if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError):
            return RetryableError("timeout", f"no answer from {self.host}:{self.port} within {self.timeout:g}s")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return RetryableError("network", self._clean(f"{name}: {exc}"))
        if isinstance(exc, smtplib.SMTPException):
            # e.g. no STARTTLS or no usable AUTH mechanism: the configuration, not the moment
            return PermanentError("smtp unsupported", self._clean(f"{name}: {exc}"))
        if isinstance(exc, UnicodeError):  # smtplib sends AUTH credentials as ASCII only
            return PermanentError("config", "the SMTP username and password must be ASCII")
        if isinstance(exc, TimeoutError):
            return RetryableError("timeout", f"no answer from {self.host}:{self.port} within {self.timeout:g}s")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return PermanentError("tls", self._clean(f"certificate not trusted: {exc.verify_message}"))
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return RetryableError("network", self._clean(f"{name}: {exc}"))
        if isinstance(exc, ssl.SSLError):  # e.g. WRONG_VERSION_NUMBER: ssl against a plain or STARTTLS port
            return PermanentError("tls", self._clean(f"{name}: {exc}; check `security` against the port"))
        if isinstance(exc, OSError):  # refused, reset, unreachable, DNS
            return RetryableError("network", self._clean(f"{name}: {exc}"))
        return RetryableError("error", self._clean(f"{name}: {exc}"))

    def _clean(self, text: str) -> str:
        pw = self._password
        if not pw:
            return text
        user = self.username or ""
        forms = [pw, base64.b64encode(f"\0{user}\0{pw}".encode()).decode(), base64.b64encode(pw.encode()).decode()]
        return redact(text, *forms)
