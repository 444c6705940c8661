"""The demo's terminal view: PNG/QR decoding, half-block drawing, WeCom and email rendering, the local inbox."""

from __future__ import annotations

import io
import random
import smtplib
import struct
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
import segno

from agent.cli.demo_view import LocalInbox, email_text, html_to_text, mask_mobile, wecom_text
from agent.cli.qr_view import _decode_png, png_to_terminal, qr_matrix
from agent.sandbox.wecom import FakeWeCom, Received
from notifiers import Message, SmtpMailer, WeComRobot
from tests.conftest import run_async

URL = "http://127.0.0.1:8765/login/?redirectUrl=%2Faftersales%2Faftersale_list"
CST = timezone(timedelta(hours=8))
T0 = datetime(2024, 1, 1, 9, 12, 30, tzinfo=CST).timestamp()
Matrix = list[list[bool]]


def segno_png(qr: segno.QRCode, **kw: object) -> bytes:
    buf = io.BytesIO()
    qr.save(buf, kind="png", **kw)
    return buf.getvalue()


def modules(qr: segno.QRCode) -> Matrix:
    return [[bool(v) for v in row] for row in qr.matrix]


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filter_row(kind: int, row: bytes, prev: bytes, bpp: int) -> bytes:
    def left(i: int) -> int:
        return row[i - bpp] if i >= bpp else 0

    def up_left(i: int) -> int:
        return prev[i - bpp] if i >= bpp else 0

    predict: Callable[[int], int] = {
        0: lambda i: 0,
        1: left,
        2: lambda i: prev[i],
        3: lambda i: (left(i) + prev[i]) // 2,
        4: lambda i: paeth(left(i), prev[i], up_left(i)),
    }[kind]
    return bytes([kind]) + bytes((row[i] - predict(i)) & 0xFF for i in range(len(row)))


def write_png(pixels: list[list[tuple[int, ...]]], colour: int, *, interlace: int = 0, depth: int = 8) -> bytes:
    """A PNG of RGB (colour 2) or RGBA (colour 6) pixels, rows filtered with types 0, 1, 2, 3, 4 in turn."""
    height, width, bpp = len(pixels), len(pixels[0]), len(pixels[0][0])
    rows = [bytes(v for px in r for v in px) for r in pixels]
    raw, prev = b"", bytes(width * bpp)
    for y, row in enumerate(rows):
        raw += filter_row(y % 5, row, prev, bpp)
        prev = row
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def draw(matrix: Matrix, size: int, margin: int, dark: tuple[int, ...], light: tuple[int, ...]) -> list[list[tuple]]:
    """`matrix` drawn into size×size pixels (nearest neighbour, any scale) inside a `margin` of light pixels."""
    n, total = len(matrix), size + 2 * margin

    def px(x: int, y: int) -> tuple[int, ...]:
        if not (margin <= x < margin + size and margin <= y < margin + size):
            return light
        return dark if matrix[(y - margin) * n // size][(x - margin) * n // size] else light

    return [[px(x, y) for x in range(total)] for y in range(total)]


def undraw(drawing: str, quiet: int = 2, invert: bool = False) -> Matrix:
    """The module matrix back from a half-block drawing (dark modules are the cells *not* drawn, by default)."""
    halves = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}
    ink: Matrix = []
    for line in drawing.split("\n"):
        cells = [halves[c] for c in line]
        ink += [[t for t, _ in cells], [b for _, b in cells]]
    return [[c == invert for c in row[quiet:-quiet]] for row in ink[quiet:quiet + len(ink[0]) - 2 * quiet]]


@pytest.fixture(scope="module")
def url_qr() -> segno.QRCode:
    return segno.make(URL, error="m")


# ---- PNG decoding and the QR grid -------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", range(1, 9))
@pytest.mark.parametrize("border", range(5))
def test_segno_pngs_decode_to_segno_matrix(url_qr: segno.QRCode, scale: int, border: int) -> None:
    assert url_qr.version == 5 and len(url_qr.matrix) == 37
    assert qr_matrix(segno_png(url_qr, scale=scale, border=border)) == modules(url_qr)


@pytest.mark.parametrize("data", ["pdd", "1234567890", "示例旗舰店"])
@pytest.mark.parametrize("scale", [1, 3, 7])
def test_micro_and_small_codes(data: str, scale: int) -> None:
    qr = segno.make(data, error="m") if data.isascii() else segno.make(data)
    assert qr_matrix(segno_png(qr, scale=scale, border=2)) == modules(qr)


@pytest.mark.parametrize("colours", [
    {"dark": "darkblue", "light": "yellow"},
    {"dark": "#333", "light": "#eee"},
    {"dark": "black", "light": None},  # transparent background (tRNS): composited over white
    {"dark": "#8b0000", "light": "white", "finder_dark": "green", "data_dark": "#0000cc"},
])
def test_colour_variants(url_qr: segno.QRCode, colours: dict[str, str | None]) -> None:
    png = segno_png(url_qr, scale=4, border=3, **colours)
    assert qr_matrix(png) == modules(url_qr)


def test_rgba_png_with_every_filter_type(url_qr: segno.QRCode) -> None:
    matrix = modules(url_qr)
    n = len(matrix)
    pixels = draw(matrix, 5 * n, 10, (20, 20, 30, 255), (255, 255, 255, 255))
    png = write_png(pixels, 6)
    assert qr_matrix(png) == matrix


@pytest.mark.parametrize("colour", [2, 6])
def test_every_filter_type_decodes_noise_exactly(colour: int) -> None:
    """Random pixels make every predictor (Paeth ties included) matter; the decoder's luminance must match."""
    rng = random.Random(colour)
    bpp = 3 if colour == 2 else 4
    pixels = [[tuple(rng.randrange(256) for _ in range(bpp)) for _ in range(23)] for _ in range(25)]
    pixels += [[(7, 7, 7, 255)[:bpp]] * 23] * 5  # flat rows: ties everywhere
    expected = [[((299 * p[0] + 587 * p[1] + 114 * p[2]) // 1000 * (p[3] if bpp == 4 else 255)
                  + 255 * (255 - (p[3] if bpp == 4 else 255))) // 255 for p in row] for row in pixels]
    assert _decode_png(write_png(pixels, colour)) == expected


def test_rgb_png_non_integer_scale() -> None:
    qr = segno.make_qr("https://example.com/pdd", error="m", version=3)
    matrix = modules(qr)
    assert len(matrix) == 29
    png = write_png(draw(matrix, 200, 7, (0, 0, 0), (250, 250, 250)), 2)
    assert qr_matrix(png) == matrix
    assert undraw(png_to_terminal(png)) == matrix


def test_rgba_transparent_background_is_light(url_qr: segno.QRCode) -> None:
    matrix = modules(url_qr)
    png = write_png(draw(matrix, 3 * len(matrix), 4, (0, 0, 0, 255), (0, 0, 0, 0)), 6)
    assert qr_matrix(png) == matrix


@pytest.mark.parametrize("bad", [
    b"", b"not a png at all", b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30,
    b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)) + chunk(b"IEND", b""),
])
def test_garbage_raises_value_error(bad: bytes) -> None:
    with pytest.raises(ValueError):
        qr_matrix(bad)
    with pytest.raises(ValueError):
        png_to_terminal(bad)


def test_unsupported_formats_are_refused_clearly() -> None:
    grey = [[(0, 0, 0)] * 4] * 4
    with pytest.raises(ValueError, match="隔行扫描"):
        png_to_terminal(write_png(grey, 2, interlace=1))
    with pytest.raises(ValueError, match="位深 16"):
        png_to_terminal(write_png(grey, 2, depth=16))
    good = write_png(grey, 2)
    broken = good[:40] + bytes([good[40] ^ 0xFF]) + good[41:]  # inside IDAT: the CRC no longer matches
    with pytest.raises(ValueError, match="CRC"):
        png_to_terminal(broken)


def test_not_a_qr_falls_back_to_a_downscaled_picture() -> None:
    white, black = (255, 255, 255), (0, 0, 0)
    pixels = [[black if 40 <= x < 80 else white for x in range(120)] for y in range(20)]
    png = write_png(pixels, 2)
    with pytest.raises(ValueError, match="定位图案"):
        qr_matrix(png)
    lines = png_to_terminal(png).split("\n")
    assert len(lines) == 5 and {len(line) for line in lines} == {60}  # 120×20 px → 60×10 cells → 5 lines
    assert lines[0] == "█" * 20 + " " * 20 + "█" * 20  # the black band is not drawn on a dark terminal
    assert png_to_terminal(png, invert=True).split("\n")[0] == " " * 20 + "█" * 20 + " " * 20


def test_half_block_drawing_round_trips(url_qr: segno.QRCode) -> None:
    png = segno_png(url_qr, scale=3, border=4)
    n = len(url_qr.matrix)
    drawing = png_to_terminal(png)
    lines = drawing.split("\n")
    assert len(lines) == (n + 4 + 1) // 2 and {len(line) for line in lines} == {n + 4}
    assert lines[0] == "█" * (n + 4)  # two quiet rows, light = drawn
    assert set(drawing) <= set("▀▄█ \n")
    assert undraw(drawing) == modules(url_qr)
    inverted = png_to_terminal(png, invert=True)
    assert inverted.split("\n")[0] == " " * (n + 4)
    assert undraw(inverted, invert=True) == modules(url_qr)


# ---- WeCom messages -------------------------------------------------------------------------------------------
MARKDOWN = (
    "### 【示例旗舰店】售后预警：1 单即将逾期\n\n"
    '1. <font color="warning">【紧急·售后】</font>**仅退款** 订单 240101-123\n'
    '退款 ¥12.90 · 截止 1月1日 10:00 · <font color="warning">剩余 47分</font>\n'
    "> 请运行 `pdd-agent login --shop 示例旗舰店`\n"
    "[查看详情](http://127.0.0.1:8765/aftersales-ssr/detail?id=1)"
)


def received(msgtype: str, content: str, mobiles: tuple[str, ...] = (), image: bytes | None = None) -> Received:
    return Received("k1", msgtype, content, mobiles, (), T0, image)


def test_markdown_without_colour_is_plain_text() -> None:
    out = wecom_text(received("markdown", MARKDOWN), False, tz=CST)
    assert "\x1b" not in out
    assert out.split("\n")[0] == "── 企业微信群 · 售后提醒机器人 09:12 ──"
    assert "  【示例旗舰店】售后预警：1 单即将逾期" in out.split("\n")
    assert "  1. 【紧急·售后】仅退款 订单 240101-123" in out.split("\n")
    assert "退款 ¥12.90 · 截止 1月1日 10:00 · 剩余 47分" in out
    assert "│ 请运行 `pdd-agent login --shop 示例旗舰店`" in out
    assert "查看详情 (http://127.0.0.1:8765/aftersales-ssr/detail?id=1)" in out
    for markup in ("<font", "</font>", "**", "###", "[查看详情]"):
        assert markup not in out


def test_markdown_with_colour_uses_ansi() -> None:
    out = wecom_text(received("markdown", MARKDOWN), True, tz=CST, robot="运营")
    assert "企业微信群 · 运营 09:12" in out
    assert "\x1b[33m【紧急·售后】\x1b[39m\x1b[1m仅退款\x1b[22m 订单 240101-123" in out
    assert "\x1b[33m剩余 47分\x1b[39m" in out
    assert "\x1b[36mpdd-agent login --shop 示例旗舰店\x1b[39m" in out
    assert "<font" not in out and "**" not in out
    grey = wecom_text(received("markdown", '<font color="comment">提醒</font> <font color="info">已处理</font>'), True)
    assert "\x1b[90m提醒\x1b[39m \x1b[32m已处理\x1b[39m" in grey


def test_text_message_masks_mentioned_mobiles() -> None:
    msg = received("text", "【示例旗舰店】售后预警：1 单即将逾期", ("13800000000", "13912345678"))
    out = wecom_text(msg, False, tz=CST)
    assert out.split("\n")[1:] == ["  【示例旗舰店】售后预警：1 单即将逾期", "  @138****0000 @139****5678"]
    assert "13800000000" not in out and "13912345678" not in out
    assert mask_mobile("@all") == "所有人" and mask_mobile("10086") == "***86"


def test_image_message_draws_the_qr(url_qr: segno.QRCode) -> None:
    png = segno_png(url_qr, scale=5, border=2)
    out = wecom_text(received("image", "md5", image=png), False, tz=CST)
    lines = out.split("\n")
    assert lines[1] == "  [图片] 登录二维码"
    assert "\n".join(line[2:] for line in lines[2:]) == png_to_terminal(png)
    assert "▀" in out and "▄" in out
    broken = wecom_text(received("image", "md5", image=b"junk"), False)
    assert "[图片] 登录二维码（无法在终端显示：" in broken


def test_messages_sent_through_the_robot_render(url_qr: segno.QRCode) -> None:
    fake = FakeWeCom(keys={"k1"}).start()
    try:
        robot = WeComRobot(fake.webhook_url("k1"))
        message = Message(title="【示例旗舰店】需要登录（扫码）", markdown=MARKDOWN, text="t", html="<p>h</p>",
                          mention_mobiles=("13800000000",), image_png=segno_png(url_qr, scale=4, border=1))

        async def go() -> None:
            try:
                await robot.send(message)
            finally:
                await robot.aclose()

        run_async(go())
        got = fake.messages("k1")
    finally:
        fake.stop()
    assert [m.msgtype for m in got] == ["markdown", "image", "text"]
    md, image, text = (wecom_text(m, False) for m in got)
    assert "1. 【紧急·售后】仅退款 订单 240101-123" in md
    assert undraw("\n".join(line[2:] for line in image.split("\n")[2:])) == modules(url_qr)
    assert text.endswith("  【示例旗舰店】需要登录（扫码）\n  @138****0000")


# ---- email -----------------------------------------------------------------------------------------------------
TITLE = "【示例旗舰店】售后预警：1 单即将逾期（1 单紧急）"
TEXT = "【示例旗舰店】售后预警\n\n1. 【紧急·售后】仅退款 订单 240101-123\n退款 ¥12.90 · 剩余 47分"


def test_inbox_receives_mail_from_smtp_mailer() -> None:
    with LocalInbox() as inbox:
        assert inbox.host == "127.0.0.1" and inbox.port > 0
        mailer = SmtpMailer(inbox.host, inbox.port, "none", None, None, "运营告警 <alerts@example.com>",
                            ("boss@example.com", "ops@example.com"), timeout=5)
        answer = run_async(mailer.send(Message(title=TITLE, markdown="", text=TEXT, html="<p>h</p>")))
        assert answer.startswith("250 ")
        assert inbox.wait(1, timeout=5)
        [mail] = inbox.take()
        assert inbox.take() == [] and inbox.count == 1
    assert mail["Subject"] == TITLE
    out = email_text(mail, False)
    lines = out.split("\n")
    assert lines[:4] == [
        "── 邮箱 · 收件箱 ──",
        "  发件人：运营告警 <alerts@example.com>",
        "  收件人：boss@example.com, ops@example.com",
        f"  主题：{TITLE}",
    ]
    assert "\n".join(line.removeprefix("  ") for line in lines[5:]) == TEXT
    assert "\x1b" not in out
    assert f"\x1b[1m{TITLE}\x1b[22m" in email_text(mail, True)


def test_inbox_keeps_order_and_html_only_mail_falls_back_to_text() -> None:
    with LocalInbox() as inbox:
        for i in range(3):
            mail = EmailMessage()
            mail["Subject"] = f"第 {i} 封"
            mail["From"], mail["To"] = "a@example.com", "b@example.com"
            if i == 2:
                body = "<h3>售后&amp;预警</h3><p>订单 <b>240101-123</b><br>剩余 &lt;1小时</p>"
                mail.set_content(body, subtype="html")
            else:
                mail.set_content(f"正文 {i}")
            with smtplib.SMTP(inbox.host, inbox.port, timeout=5) as smtp:
                smtp.send_message(mail)
        assert inbox.wait(3, timeout=5)
        got = inbox.take()
    assert [m["Subject"] for m in got] == ["第 0 封", "第 1 封", "第 2 封"]
    assert email_text(got[0], False).endswith("\n  正文 0")
    assert email_text(got[2], False).endswith("\n  售后&预警\n  订单 240101-123\n  剩余 <1小时")
    assert html_to_text("<style>p{}</style><p>a&nbsp;b</p>") == "a b"


def test_inbox_stop_closes_the_port() -> None:
    inbox = LocalInbox().start()
    port = inbox.port
    inbox.stop()
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", port, timeout=2)
