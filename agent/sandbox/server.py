"""The sandbox HTTP server: the merchant-backend routes, cookies and redirects, over a Backend.

Stdlib `ThreadingHTTPServer` (HTTP/1.1 keep-alive, TCP_NODELAY); control routes live in control_api.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import quote, urlsplit

import segno

from agent.httpserve import BackgroundServer, QuietHandler, QuietServer
from agent.sandbox import items as it
from agent.sandbox import pages, risk
from agent.sandbox import records as rec
from agent.sandbox.backend import Backend
from agent.sandbox.control_api import handle_control
from agent.sandbox.records import Session

COOKIE_MAX_AGE = 30 * 86400
CAPTCHA_COOKIE = "mms-mobile-captcha-cookie-token"  # set by the page after a passed captcha (§F)
# Assumed form of result.uri (the prefix is unknown; `type=1&data=<uuid>` is PDD's, mms-live-2026.md §H)
QR_URI = "https://mms.pinduoduo.com/scanlogin?type=1&data={uuid}"

_STATIC_TYPES = {".js": "application/javascript; charset=utf-8", ".svg": "image/svg+xml", ".css": "text/css"}
_THUMB_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="60" height="60"><rect width="60" height="60" fill="#eee"/>'
    b'<text x="30" y="36" font-size="12" text-anchor="middle" fill="#999">IMG</text></svg>'
)


def envelope(result: Any) -> dict[str, Any]:
    return {"success": True, "errorCode": rec.OK, "errorMsg": None, "result": result}


def failure(code: int, msg: str, result: Any = None) -> dict[str, Any]:
    return {"success": False, "errorCode": code, "errorMsg": msg, "result": result}


class Handler(QuietHandler):
    """One request; `self.server.backend` is the shared state."""

    server: SandboxHTTPServer

    @property
    def backend(self) -> Backend:
        return self.server.backend

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header follows the sandbox clock, as a live server's follows its own."""
        return super().date_time_string(self.backend.clock.now() if timestamp is None else timestamp)

    def answer(self, method: str) -> None:
        arrived = time.monotonic()  # the request is read: it has reached the backend, whatever waits follow
        self.route, self.query, self.raw_body = self.request_parts()
        self._out_cookies: list[str] = []
        with self.backend.lock:
            self.backend.stats[f"{method} {self.route}"] += 1
        sess = None
        if not self.route.startswith(("/__sandbox/", "/static/")):
            sess = self.backend.session_for(self.cookies())
            self.backend.note_request(sess.username if sess else None, self.client_address[0],
                                      self.headers.get("Via", "").strip(), now=arrived,
                                      agent=f"{self.headers.get('User-Agent', '')} | "
                                            f"{self.headers.get('Accept-Language', '')}")
        try:
            if self.route.startswith("/__sandbox/"):
                handle_control(self, method)
                return
            handler = ROUTES.get((method, self.route.rstrip("/") or "/"))
            if handler is None:
                self.send_text(HTTPStatus.NOT_FOUND, "404 Not Found")
                return
            hold = self.backend.take_hold(sess.username) if sess else 0.0
            if hold:
                time.sleep(hold)  # armed through the control API: this account's request is slow to answer
            handler(self)
            if sess is not None:
                self.backend.log_request(sess.username, self.route, arrived, time.monotonic())
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # the sandbox must answer, never hang a test
            self.send_json({"error": f"{type(exc).__name__}: {exc}"}, status=HTTPStatus.INTERNAL_SERVER_ERROR)

    def cookies(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in (self.headers.get("Cookie") or "").split(";"):
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip()] = v.strip()
        return out

    def json_body(self) -> dict[str, Any]:
        if not self.raw_body:
            return {}
        data = json.loads(self.raw_body.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        return data

    def set_cookie(self, name: str, value: str, *, http_only: bool = False, max_age: int = COOKIE_MAX_AGE) -> None:
        flags = "; HttpOnly" if http_only else ""
        self._out_cookies.append(f"{name}={value}; Path=/; Max-Age={max_age}; SameSite=Lax{flags}")

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # sandbox only (the live backend reports nothing of the kind): the address this request came from, so
        # `doctor` can show a shop's exit IP through its proxy
        self.send_header("X-Client-Address", self.client_address[0])
        for c in self._out_cookies:
            self.send_header("Set-Cookie", c)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, data: Any, status: int = HTTPStatus.OK, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json;charset=UTF-8", extra)

    def send_html(self, html: str, status: int = HTTPStatus.OK) -> None:
        self._send(status, html.encode("utf-8"), "text/html; charset=utf-8")

    def send_text(self, status: int, text: str) -> None:
        self._send(status, text.encode("utf-8"), "text/plain; charset=utf-8")

    def redirect(self, location: str) -> None:
        self._send(HTTPStatus.FOUND, b"", "text/html; charset=utf-8", {"Location": location})

    def full_url(self) -> str:
        return f"http://{self.headers.get('Host', 'localhost')}{self.path}"

    def ensure_device(self) -> str:
        device = self.cookies().get("api_uid", "")
        if not device:
            device = secrets.token_urlsafe(16)
            self.set_cookie("api_uid", device, max_age=365 * 86400)
        return device

    def page_session(self) -> Session | None:
        """The session for a page; redirects to the login page (and returns None) when logged out."""
        sess = self.backend.session_for(self.cookies())
        if sess is None:
            self.redirect("/login?redirectUrl=" + quote(self.full_url(), safe=""))
        return sess

    def business_session(self) -> Session | None:
        """The session for a business API, answering 43001, HTTP 429 or 54001 itself when it cannot go on."""
        sess = self.backend.session_for(self.cookies(), business=True)
        if sess is None:
            self.send_json(failure(rec.ERR_SESSION, rec.MSG_SESSION), extra={"checklogin": "false"})
            return None
        if self.backend.rate_limited(sess.pass_id):
            self.send_json(failure(rec.ERR_RATE, rec.MSG_RATE), status=HTTPStatus.TOO_MANY_REQUESTS)
            return None
        tokens = [t for t in (self.headers.get("verifyauthtoken"), self.cookies().get(CAPTCHA_COOKIE)) if t]
        cookies = self.cookies()
        risk_ok = self.backend.risk_passes(sess, self.route, self.headers.get("Anti-Content", ""),
                                           self.headers.get("User-Agent", ""), cookies.get("_nano_fp", ""),
                                           cookies.get("rckk", ""), self.headers.get("etag", ""))
        token = self.backend.api_captcha(sess, tokens, signed=bool(self.headers.get("Anti-Content")), risk_ok=risk_ok)
        if token is not None:
            self.send_json(failure(rec.ERR_CAPTCHA_API, rec.MSG_CAPTCHA_API, {"verifyAuthToken": token}))
            return None
        return sess

    def set_session_cookies(self, sess: Session) -> None:
        self.set_cookie("PASS_ID", sess.pass_id, http_only=True)
        self.set_cookie("_nano_fp", sess.nano_fp)
        self.set_cookie("rckk", sess.rckk)

    def shop_name(self, sess: Session) -> str:
        return self.backend.shops[sess.mall_id].name


# ---- pages ----------------------------------------------------------------------------------
def login_page(h: Handler) -> None:
    h.ensure_device()
    h.send_html(pages.login_page())


def home(h: Handler) -> None:
    sess = h.page_session()
    if sess:
        counters = h.backend.wait_handle_count(sess.mall_id)
        h.send_html(pages.home_page(h.shop_name(sess), sess.username, counters, h.backend.settings.build))


def aftersale_list(h: Handler) -> None:
    sess = h.page_session()
    if sess is None:
        return
    referer = urlsplit(h.headers.get("Referer") or "")
    same_site = bool(referer.netloc) and referer.netloc == h.headers.get("Host")
    if h.query.get("msfrom") != "mms_sidenav" and not same_site and h.backend.blind_redirect():
        h.redirect("/aftersales/setup")
        return
    h.send_html(pages.workbench_page(h.shop_name(sess), sess.username, h.backend.settings))


def setup(h: Handler) -> None:
    sess = h.page_session()
    if sess:
        h.send_html(pages.setup_page(h.shop_name(sess), sess.username))


def detail(h: Handler) -> None:
    sess = h.page_session()
    if sess is None:
        return
    try:
        shop, item = h.backend.find_item(int(h.query.get("id", "0")))
    except (KeyError, ValueError):
        shop = None
    if shop is None or shop.mall_id != sess.mall_id or item.order_sn != h.query.get("orderSn"):
        h.send_html(pages.page("售后详情", "<p>售后单不存在</p>"), status=HTTPStatus.NOT_FOUND)
        return
    now = h.backend.clock.now()
    with h.backend.lock:
        it.apply_time(item, now, h.backend.settings.refund_lag)
        row = it.to_row(item, now)
    remain = row["expireRemainTime"] if row["expireActionDesc"] else None
    h.send_html(pages.detail_page(shop.name, sess.username, row, remain))


def server_time(h: Handler) -> None:
    """`/api/server/_stm`: the server's time in ms, from which the risk SDK mints its tokens."""
    h.send_json({"server_time": int(h.backend.clock.now() * 1000)})


def risk_js(h: Handler) -> None:
    """The risk SDK of the backend's current build (a new build moves its module id and names)."""
    h._send(HTTPStatus.OK, risk.script(h.backend.settings.build).encode("utf-8"), "application/javascript")


def static(h: Handler) -> None:
    name = h.route.rsplit("/", 1)[-1]
    if name == "thumb.svg":
        h._send(HTTPStatus.OK, _THUMB_SVG, "image/svg+xml")
        return
    ext = name[name.rfind(".") :] if "." in name else ""
    res = resources.files("agent.sandbox").joinpath("static", name)
    if ext not in _STATIC_TYPES or "/" in name or not res.is_file():
        h.send_text(HTTPStatus.NOT_FOUND, "404 Not Found")
        return
    h._send(HTTPStatus.OK, res.read_bytes(), _STATIC_TYPES[ext])


# ---- login APIs -----------------------------------------------------------------------------
def password_encrypt(h: Handler) -> None:
    nonce, key = h.backend.password_key()
    h.send_json(envelope({"passwordEncrypt": nonce, "publicKey": key}))


def auth(h: Handler) -> None:
    body = h.json_body()
    device = h.ensure_device()
    password = h.backend.decrypt_password(str(body.get("password", "")), str(body.get("passwordEncrypt", "")))
    if password is None:
        h.send_json(failure(rec.ERR_PARAM, rec.MSG_PARAM))
        return
    res = h.backend.password_login(
        str(body.get("username", "")), password, device,
        sms_code=str(body.get("mobileVerifyCode") or ""), picture_code=str(body.get("verificationCode") or ""),
    )
    if res.ok and res.session:
        h.set_session_cookies(res.session)
        h.send_json(envelope({"login": True}))
        return
    extra: dict[str, Any] = {}
    if res.need_sms:
        extra["needSms"] = True  # assumed marker of the SMS step
    if res.captcha_ticket:
        extra["captchaTicket"] = res.captcha_ticket
    h.send_json(failure(res.code, res.message, extra or None))


def send_sms(h: Handler) -> None:
    body = h.json_body()
    if body.get("type") != rec.SMS_TYPE_LOGIN:
        h.send_json(failure(rec.ERR_PARAM, rec.MSG_PARAM))
        return
    code = h.backend.send_sms(str(body.get("username", "")))
    h.send_json(envelope({"sent": True}) if code else failure(rec.ERR_PASSWORD, "账号不存在"))


def picture_captcha(h: Handler) -> None:
    h._send(HTTPStatus.OK, resources.files("agent.sandbox").joinpath("static", "captcha.svg").read_bytes(),
            "image/svg+xml")


def captcha_status(h: Handler) -> None:
    """Sandbox only: has a human passed this slider ticket or 54001 verifyAuthToken? (the pages poll it)"""
    ticket = h.query.get("ticket", "")
    with h.backend.lock:
        if ticket == "picture":  # the picture captcha a human types (sandbox: solved by the control API)
            passed = not h.backend.picture_armed
        else:
            passed = h.backend.captcha_tickets.get(ticket, False) or bool(h.backend.verify_tokens.get(ticket))
    h.send_json(envelope({"passed": passed}))


def qr_create(h: Handler) -> None:
    tok = h.backend.new_qr()
    fingerprint = secrets.token_hex(8)
    h.send_json(envelope({"uri": QR_URI.format(uuid=tok.token)}), extra={"ETag": fingerprint})


def qr_matrix(h: Handler) -> None:
    """Sandbox only: the QR modules of `data` for the page's canvas (the live page draws with qrcode.react)."""
    qr = segno.make(h.query.get("data", ""), error="m")
    h.send_json({"rows": ["".join("1" if m else "0" for m in row) for row in qr.matrix]})


def qr_query(h: Handler) -> None:
    status, sess, blocked = h.backend.qr_status(str(h.json_body().get("data", "")))
    if blocked:
        h.send_json(failure(blocked, rec.BLOCKED_LOGIN[blocked]))
        return
    if sess:
        h.set_session_cookies(sess)
    h.send_json(envelope({"status": status}))


def check_login(h: Handler) -> None:
    h.send_json(envelope({"login": h.backend.session_for(h.cookies()) is not None}))


def userinfo(h: Handler) -> None:
    sess = h.backend.session_for(h.cookies())
    if sess is None:
        h.send_json(failure(rec.ERR_SESSION, rec.MSG_SESSION))
        return
    acc = h.backend.accounts[sess.username]
    h.send_json(envelope({
        "id": abs(hash(sess.username)) % 10**9, "username": sess.username, "mobile": acc.mobile,
        "mallOwner": ":" not in sess.username, "mall_id": sess.mall_id,
        "server_time": int(h.backend.clock.now()),
    }))


# ---- business APIs --------------------------------------------------------------------------
def query_list(h: Handler) -> None:
    sess = h.business_session()
    if sess is None:
        return
    try:
        result = h.backend.query_list(sess.mall_id, h.json_body())
    except (ValueError, TypeError):
        h.send_json(failure(rec.ERR_PARAM, rec.MSG_PARAM))
        return
    h.send_json(envelope(result))


def query_count(h: Handler) -> None:
    sess = h.business_session()  # the page sends no body (mms-live-2026.md §B)
    if sess:
        h.send_json(envelope(h.backend.query_count(sess.mall_id)))


def query_wait_handle_count(h: Handler) -> None:
    sess = h.business_session()
    if sess:
        h.send_json(envelope(h.backend.wait_handle_count(sess.mall_id)))


ROUTES: dict[tuple[str, str], Callable[[Handler], None]] = {
    ("GET", "/login"): login_page,
    ("GET", "/"): home,
    ("GET", "/home"): home,
    ("GET", "/aftersales/aftersale_list"): aftersale_list,
    ("GET", "/aftersales/setup"): setup,
    ("GET", "/aftersales-ssr/detail"): detail,
    ("GET", "/janus/api/queryPasswordEncrypt"): password_encrypt,
    ("POST", "/janus/api/auth"): auth,
    ("POST", "/janus/api/mobile/sendVerificationCode"): send_sms,
    ("GET", "/janus/api/getCaptchaCode"): picture_captcha,
    ("GET", "/janus/api/captcha/status"): captcha_status,
    ("POST", "/janus/api/scan/login/qrcode"): qr_create,
    ("POST", "/janus/api/scan/login/query"): qr_query,
    ("GET", "/static/qrmatrix"): qr_matrix,
    ("GET", "/static/risk.js"): risk_js,
    ("GET", "/api/server/_stm"): server_time,
    ("GET", "/janus/api/checkLogin"): check_login,
    ("POST", "/janus/api/checkLogin"): check_login,
    ("POST", "/janus/api/new/userinfo"): userinfo,
    ("POST", "/mercury/mms/afterSales/queryList"): query_list,
    ("POST", "/mercury/mms/afterSales/queryCount"): query_count,
    ("POST", "/mercury/merchant/afterSales/queryWaitHandleCount"): query_wait_handle_count,
}
for _name in ("login.js", "workbench.js", "captcha.svg", "thumb.svg"):
    ROUTES[("GET", f"/static/{_name}")] = static


class SandboxHTTPServer(QuietServer):
    def __init__(self, addr: tuple[str, int], backend: Backend, verbose: bool = False) -> None:
        super().__init__(addr, Handler)
        self.backend = backend
        self.verbose = verbose


class SandboxServer(BackgroundServer):
    thread_name = "sandbox"

    """A sandbox on loopback, run in a background thread (tests, demo) or in the foreground (CLI)."""

    def __init__(self, backend: Backend, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> None:
        self.backend = backend
        self.httpd = SandboxHTTPServer((host, port), backend, verbose)

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

