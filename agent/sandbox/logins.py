"""The sandbox's login flows: password (with its encryption stand-in), SMS code, slider and picture captchas,
blocked logins and the QR login with its statuses. A mixin of Backend, sharing its lock and state."""

from __future__ import annotations

import base64
import random
import secrets
import threading
import time
import uuid
from collections import Counter

from agent.sandbox.records import (
    BLOCKED_LOGIN,
    ERR_CAPTCHA,
    ERR_PASSWORD,
    ERR_PICTURE_CAPTCHA,
    ERR_SMS_NEEDED,
    ERR_SMS_WRONG,
    OK,
    QR_BUSY,
    QR_CANCELLED,
    QR_DONE,
    QR_EXPIRED,
    QR_ONLY_CODE,
    QR_SCANNED,
    QR_WAITING,
    Account,
    LoginResult,
    QrToken,
    Session,
    Settings,
)


class Logins:
    """Password, SMS, captcha and QR logins of the simulated backend (mixed into Backend, which sets these)."""

    lock: threading.RLock
    rng: random.Random
    settings: Settings
    accounts: dict[str, Account]
    sms_codes: dict[str, str]
    captcha_armed: set[str | None]
    captcha_tickets: dict[str, bool]
    picture_armed: set[str | None]
    password_nonces: set[str]
    qr_tokens: dict[str, QrToken]
    api_captcha_armed: set[str | None]
    api_captcha_unsigned: set[str | None]
    verify_tokens: dict[str, float]
    stats: Counter[str]

    def _new_session(self, account: Account) -> Session:
        raise NotImplementedError  # Backend's

    # ---- password / SMS / captcha login -----------------------------------------------------
    def password_key(self) -> tuple[str, str]:
        """queryPasswordEncrypt: (passwordEncrypt, publicKey). The live page RSA-encrypts the password with
        the key; the sandbox's stand-in is `base64("<passwordEncrypt>:<password>")` (login.js)."""
        with self.lock:
            nonce = secrets.token_hex(8)
            self.password_nonces.add(nonce)
            return nonce, "SANDBOX-" + secrets.token_hex(16)

    def decrypt_password(self, encrypted: str, nonce: str) -> str | None:
        with self.lock:
            if nonce not in self.password_nonces:
                return None
            self.password_nonces.discard(nonce)
        try:
            prefix, _, password = base64.b64decode(encrypted).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return password if prefix == nonce else None

    def password_login(
        self, username: str, password: str, device: str, sms_code: str = "", picture_code: str = ""
    ) -> LoginResult:
        with self.lock:
            self.stats["login_attempts"] += 1
            acc = self.accounts.get(username)
            if acc is None or acc.password != password:
                return LoginResult(False, ERR_PASSWORD, "账号或密码错误，请重新输入")
            if acc.blocked:
                return LoginResult(False, acc.blocked, BLOCKED_LOGIN[acc.blocked])
            if acc.login == "qr_only":
                return LoginResult(False, QR_ONLY_CODE, BLOCKED_LOGIN[QR_ONLY_CODE])
            if username in self.picture_armed or None in self.picture_armed:
                if not picture_code:
                    return LoginResult(False, ERR_PICTURE_CAPTCHA, "请先输入图形验证码")
            if None in self.captcha_armed or username in self.captcha_armed:
                ticket = secrets.token_hex(8)
                self.captcha_tickets[ticket] = False
                return LoginResult(False, ERR_CAPTCHA, "请完成安全验证", captcha_ticket=ticket)
            needs_sms = acc.force_sms or (acc.login == "sms" and device not in acc.trusted_devices)
            if needs_sms:
                if not sms_code:
                    return LoginResult(False, ERR_SMS_NEEDED, "为了您的账号安全，请验证手机号后继续登录", need_sms=True)
                if self.sms_codes.get(username) != sms_code:
                    return LoginResult(False, ERR_SMS_WRONG, "验证码错误，请重新输入", need_sms=True)
                del self.sms_codes[username]
                acc.force_sms = False
                if device:
                    acc.trusted_devices.add(device)
            return LoginResult(True, OK, "", session=self._new_session(acc))

    def send_sms(self, username: str) -> str | None:
        with self.lock:
            if username not in self.accounts:
                return None
            code = f"{self.rng.randrange(1000000):06d}"
            self.sms_codes[username] = code
            self.stats["sms_sent"] += 1
            return code

    def arm_sms(self, username: str) -> None:
        with self.lock:
            self.accounts[username].force_sms = True

    def arm_captcha(self, username: str | None = None) -> None:
        with self.lock:
            self.captcha_armed.add(username)

    def clear_captcha(self) -> None:
        """A human solved the captcha in front of them: pending login tickets and 54001 tokens pass,
        and every captcha is disarmed (a request without a passed token goes on too)."""
        with self.lock:
            self.captcha_armed.clear()
            self.picture_armed.clear()
            self.api_captcha_armed.clear()
            self.api_captcha_unsigned.clear()
            for ticket in self.captcha_tickets:
                self.captcha_tickets[ticket] = True
            now = time.monotonic()
            for token, passed in self.verify_tokens.items():
                self.verify_tokens[token] = passed or now

    def arm_picture_captcha(self, username: str | None = None) -> None:
        with self.lock:
            self.picture_armed.add(username)

    def arm_login_block(self, username: str, code: int) -> None:
        """Every login of `username` answers `code` (one of BLOCKED_LOGIN; 0 clears)."""
        with self.lock:
            if code and code not in BLOCKED_LOGIN:
                raise ValueError(f"unknown blocked-login code {code}; known: {sorted(BLOCKED_LOGIN)}")
            self.accounts[username].blocked = code

    # ---- QR login ---------------------------------------------------------------------------
    def new_qr(self) -> QrToken:
        with self.lock:
            tok = QrToken(token=str(uuid.uuid4()), created_real=time.monotonic())
            self.qr_tokens[tok.token] = tok
            return tok

    def qr_status(self, token: str) -> tuple[int, Session | None, int]:
        """(status, session on success, blocked errorCode or 0) for scan/login/query."""
        with self.lock:
            tok = self.qr_tokens.get(token)
            if tok is None:
                return QR_EXPIRED, None, 0
            if tok.status in (QR_WAITING, QR_SCANNED) and time.monotonic() - tok.created_real > self.settings.qr_ttl:
                tok.status = QR_EXPIRED
            if self.settings.qr_busy and tok.status == QR_WAITING:
                return QR_BUSY, None, 0
            if tok.status == QR_DONE and tok.username and not tok.consumed:
                acc = self.accounts[tok.username]
                if acc.blocked and acc.blocked != QR_ONLY_CODE:
                    tok.status = QR_CANCELLED
                    return QR_CANCELLED, None, acc.blocked
                tok.consumed = True
                return QR_DONE, self._new_session(acc), 0
            return tok.status, None, 0

    def scan_qr(self, username: str, token: str | None = None, confirm: bool = True) -> str:
        """The merchant scans the QR with the app (status 2), and confirms on the phone (status 3)."""
        with self.lock:
            if username not in self.accounts:
                raise KeyError(username)
            if token is None:
                waiting = [t for t in self.qr_tokens.values() if t.status in (QR_WAITING, QR_SCANNED)]
                if not waiting:
                    raise LookupError("no QR code is waiting to be scanned")
                tok = max(waiting, key=lambda t: t.created_real)
            else:
                tok = self.qr_tokens[token]
            tok.status = QR_DONE if confirm else QR_SCANNED
            tok.username = username
            return tok.token

    def cancel_qr(self, token: str | None = None) -> str:
        """The merchant pressed cancel on the phone (status −2)."""
        with self.lock:
            live = [t for t in self.qr_tokens.values() if t.status in (QR_WAITING, QR_SCANNED)]
            tok = self.qr_tokens[token] if token else max(live, key=lambda t: t.created_real)
            tok.status = QR_CANCELLED
            return tok.token
