"""The email notifier: build_email as a pure function, and SmtpMailer against a real local SMTP server with AUTH."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from notifiers import Message, NotifyError, PermanentError, RetryableError, SmtpMailer, build_email
from tests.conftest import run_async

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

USER = "alerts@example.com"
PASSWORD = "kqzvmwxlpdfhrtye"  # like a provider's 16-character 授权码
TO = ("boss@example.com", "ops@example.com")
TITLE = "【示例旗舰店】3 单售后即将逾期（最急 剩余 1小时23分）"
HTML = "<h2>示例旗舰店</h2><p>订单 <b>240101-123</b> 剩余 1小时23分 &lt;script&gt;</p>"
TEXT = "示例旗舰店\n订单 240101-123 剩余 1小时23分"


def message() -> Message:
    return Message(title=TITLE, markdown="## md", text=TEXT, html=HTML)


def parse(raw: bytes) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


# ---- build_email (pure) ---------------------------------------------------------------------
def test_build_email_headers_and_parts_round_trip() -> None:
    when = datetime(2024, 1, 1, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    built = build_email(message(), sender=USER, to=TO, date=when)
    raw = built.as_bytes()
    assert raw.isascii()  # 7-bit clean: RFC 2047 subject, base64 bodies
    assert b"=?utf-8?b?" in raw.split(b"\n\n", 1)[0].lower()
    got = parse(raw)
    assert got["Subject"] == TITLE
    assert got["From"] == USER and got["To"] == ", ".join(TO)
    assert got["Date"] == "Mon, 01 Jan 2024 09:30:00 +0800"
    assert got["Message-ID"].endswith("@example.com>")
    assert got.get_content_type() == "multipart/alternative"
    plain, html = got.iter_parts()
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    assert plain.get_content().rstrip("\n") == TEXT
    assert html.get_content().rstrip("\n") == HTML


def test_build_email_display_name_and_defaults() -> None:
    got = parse(build_email(message(), sender=f"运营告警 <{USER}>", to=("boss@example.com",)).as_bytes())
    assert got["From"].addresses[0].display_name == "运营告警"
    assert got["From"].addresses[0].addr_spec == USER
    assert got["Date"] and got["Message-ID"]


def test_build_email_subject_cannot_inject_headers() -> None:
    hostile = Message(title="告警\r\nBcc: evil@example.com\nX-Evil: 1", markdown="", text="t", html="<p>h</p>")
    got = parse(build_email(hostile, sender=USER, to=TO).as_bytes())
    assert got["Bcc"] is None and got["X-Evil"] is None
    assert got["Subject"] == "告警 Bcc: evil@example.com X-Evil: 1"


def test_build_email_rejects_bad_addresses() -> None:
    with pytest.raises(ValueError):
        build_email(message(), sender="not an address", to=TO)
    with pytest.raises(ValueError):
        build_email(message(), sender=USER, to=())


# ---- a real SMTP server ---------------------------------------------------------------------
@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    login: str | None


@dataclass
class Handler:
    """Behaves like QQ / 163 / Exmail: the envelope sender must be the login user."""

    received: list[Received] = field(default_factory=list)
    data_reply: str | None = None
    refuse_rcpt: set[str] = field(default_factory=set)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        login = session.auth_data.login.decode() if session.auth_data else None
        if login and address != login:
            return "501 mail from address must be same as authorization user"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address in self.refuse_rcpt:
            return "550 Mailbox not found or access denied"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        login = session.auth_data.login.decode() if session.auth_data else None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content, login))
        return "250 Ok: queued as 4A2B"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    if not ok and isinstance(auth_data, LoginPassword) and auth_data.password.startswith(b"echo"):
        # a careless server that repeats the credentials in its answer
        return AuthResult(success=False, handled=False, message=f"535 bad password {auth_data.password.decode()}")
    return AuthResult(success=ok, handled=False, auth_data=auth_data)  # handled=True would mean "already answered"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return crt, key


@dataclass
class Smtp:
    port: int
    handler: Handler
    client_ctx: ssl.SSLContext | None = None

    def mailer(self, security: str, **kw: Any) -> SmtpMailer:
        args: dict[str, Any] = {"username": USER, "password": PASSWORD, "sender": USER, "to": TO, "timeout": 5}
        args.update(kw)
        return SmtpMailer("127.0.0.1", self.port, security, ssl_context=self.client_ctx, **args)  # type: ignore[arg-type]


def serve(security: str, cert: tuple[Path, Path] | None) -> Iterator[Smtp]:
    handler = Handler()
    kw: dict[str, Any] = {"authenticator": authenticator, "auth_required": True}
    client_ctx = None
    if cert is not None:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert[0], cert[1])
        client_ctx = ssl.create_default_context(cafile=str(cert[0]))
    if security == "none":
        kw["auth_require_tls"] = False
    elif security == "starttls":
        kw.update(tls_context=server_ctx, require_starttls=True)
    else:  # aiosmtpd only counts STARTTLS as TLS for auth_require_tls; this connection is TLS from the start
        kw.update(ssl_context=server_ctx, auth_require_tls=False)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kw)
    controller.start()
    try:
        yield Smtp(port, handler, client_ctx)
    finally:
        controller.stop()


@pytest.fixture
def plain() -> Iterator[Smtp]:
    yield from serve("none", None)


def send(mailer: SmtpMailer) -> str:
    return run_async(mailer.send(message()))


def send_err(mailer: SmtpMailer, kind: type[NotifyError]) -> NotifyError:
    with pytest.raises(kind) as info:
        send(mailer)
    logged = "".join(traceback.format_exception(info.value))
    assert PASSWORD not in logged and PASSWORD not in repr(info.value)
    return info.value


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_delivers_over_each_security_mode(security: str, cert: tuple[Path, Path]) -> None:
    for server in serve(security, None if security == "none" else cert):
        answer = send(server.mailer(security))
        assert answer == "250 Ok: queued as 4A2B"
        [got] = server.handler.received
        assert (got.mail_from, got.rcpt_tos, got.login) == (USER, list(TO), USER)
        parsed = parse(got.raw)
        assert parsed["Subject"] == TITLE and parsed["From"] == USER
        plain, html = parsed.iter_parts()
        assert plain.get_content().rstrip("\n") == TEXT and html.get_content().rstrip("\n") == HTML


def test_wrong_password_is_permanent_and_not_echoed(plain: Smtp) -> None:
    wrong = "zzzz-wrong-pass-9"
    err = send_err(plain.mailer("none", password=wrong), PermanentError)
    assert err.code == "smtp 535"
    assert wrong not in str(err) and wrong not in "".join(traceback.format_exception(err))
    assert plain.handler.received == []


def test_a_password_echoed_by_the_server_is_masked(plain: Smtp) -> None:
    echoed = "echo-this-secret-back-1234"
    err = send_err(plain.mailer("none", password=echoed), PermanentError)
    assert err.code == "smtp 535" and "bad password" in err.message
    assert echoed not in str(err) and echoed not in "".join(traceback.format_exception(err))


def test_sender_other_than_login_user_is_refused_permanently(plain: Smtp) -> None:
    err = send_err(plain.mailer("none", sender="someone-else@example.com"), PermanentError)
    assert err.code == "smtp 501" and "must be same as authorization user" in err.message


def test_all_recipients_refused_is_permanent_some_refused_is_delivered(plain: Smtp) -> None:
    plain.handler.refuse_rcpt = set(TO)
    assert send_err(plain.mailer("none"), PermanentError).code == "smtp 550"
    plain.handler.refuse_rcpt = {TO[1]}
    answer = send(plain.mailer("none"))
    assert answer.startswith("250 ") and "refused: ops@example.com (550)" in answer
    assert [r.rcpt_tos for r in plain.handler.received] == [[TO[0]]]


def test_temporary_4xx_is_retryable(plain: Smtp) -> None:
    plain.handler.data_reply = "451 4.3.0 Temporary server error, try again later"
    assert send_err(plain.mailer("none"), RetryableError).code == "smtp 451"


def test_connection_refused_is_retryable() -> None:
    mailer = SmtpMailer("127.0.0.1", free_port(), "none", USER, PASSWORD, USER, TO, timeout=2)
    assert send_err(mailer, RetryableError).code == "network"


def test_silent_server_times_out_retryably() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        mailer = SmtpMailer("127.0.0.1", listener.getsockname()[1], "none", USER, PASSWORD, USER, TO, timeout=0.3)
        assert send_err(mailer, RetryableError).code == "timeout"


def test_ssl_against_a_plain_port_is_a_permanent_tls_error(plain: Smtp) -> None:
    assert send_err(plain.mailer("ssl"), PermanentError).code == "tls"


def test_untrusted_certificate_is_permanent(cert: tuple[Path, Path]) -> None:
    for server in serve("starttls", cert):
        server.client_ctx = None  # the system trust store does not know the self-signed certificate
        err = send_err(server.mailer("starttls"), PermanentError)
        assert err.code == "tls" and "certificate" in err.message


def test_constructor_validates(plain: Smtp) -> None:
    with pytest.raises(ValueError, match="security"):
        SmtpMailer("h", 25, "tls", USER, PASSWORD, USER, TO)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recipient"):
        SmtpMailer("h", 25, "ssl", USER, PASSWORD, USER, ())
    mailer = plain.mailer("none")
    assert PASSWORD not in repr(mailer) and USER in repr(mailer)
    assert (mailer.kind, mailer.max_bytes, mailer.rate_limits) == ("email", None, ())
    assert PASSWORD not in mailer.rate_key and USER not in mailer.rate_key
