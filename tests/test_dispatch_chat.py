"""The dispatcher with the real DingTalk, Feishu and WeCom app notifiers against their fakes over loopback HTTP:
splitting within each byte limit, mentions, rate limits that delay and lose nothing (the service never trips a
block or a silent drop), a signature failure that is permanent and fails the urgent alerts over, token refresh,
QR links for channels without images."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import segno

from agent.config import Config, load_config
from agent.core.models import Item, ShopResult, ShopState
from agent.outbox.dispatch import Dispatcher, Report, build_notifiers
from agent.outbox.enqueue import record_result
from agent.outbox.store import Store
from agent.sandbox.dingtalk import FakeDingTalk, Robot
from agent.sandbox.feishu import Bot, FakeFeishu
from agent.sandbox.wecom_app import FakeWeComApp
from tests.chat_helpers import AGENT, APP_SECRET, CORP, FS_SECRET, SEC, ZHANG, channel_tables
from tests.conftest import run_async
from tests.test_dispatch import TZ, Clock, Scripted

NOW = datetime.now(TZ).replace(microsecond=0)  # the fakes check signatures against real time (±1 h)


@dataclass
class World:
    tmp: Path
    clock: Clock
    dingtalk: FakeDingTalk
    feishu: FakeFeishu
    app: FakeWeComApp

    def config(self, channel: str, *, secret: str = SEC, shops: int = 1, admin: str = "mail") -> Config:
        shop_tables = "".join(f'[[shops]]\nname = "店{n}"\nusername = "店{n}"\n' for n in range(shops))
        text = f"""
[agent]
data_dir = "data"
{shop_tables}
[alerts]
notify = ["{channel}"]
admin_notify = ["{admin}"]
{channel_tables(self.dingtalk, self.feishu, self.app, secret=secret)}
[notifiers.mail]
type = "email"
host = "127.0.0.1"
username = "a@x"
to = ["b@x"]
"""
        (self.tmp / "config.toml").write_text(text, encoding="utf-8")
        return load_config(self.tmp / "config.toml")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock(NOW)
    ding = FakeDingTalk({"dt": Robot(secret=SEC)}, clock=lambda: clock.t).start()
    fs = FakeFeishu({"fs": Bot(secret=FS_SECRET, members=(ZHANG,))}, clock=lambda: clock.t).start()
    app = FakeWeComApp(CORP, APP_SECRET, AGENT, ["ZhangSan"], clock=lambda: clock.t).start()
    try:
        yield World(tmp_path, clock, ding, fs, app)
    finally:
        for fake in (ding, fs, app):
            fake.stop()


def item(n: int, remaining: timedelta, reason: str = "不想要了") -> Item:
    return Item(kind="aftersale", id=str(1000 + n), order_sn=f"261121-{n:015d}", type="仅退款",
                status="买家申请退款，待商家处理", reason=reason, goods_name="加厚保温杯 500ml " * 4, goods_spec="",
                refund_amount_fen=1290 + n, order_amount_fen=1290 + n, created_at=NOW - timedelta(days=1),
                deadline=NOW + remaining, remaining_seconds=int(remaining.total_seconds()))


def queue(cfg: Config, store: Store, shop: int, items: list[Item]) -> None:
    record_result(cfg, store, cfg.shops[shop], ShopResult(name=f"店{shop}", checked_at=NOW, aftersales=items), NOW)


def dispatcher(cfg: Config, store: Store, world: World) -> tuple[Dispatcher, Scripted]:
    notifiers = build_notifiers(cfg)
    mail = notifiers["mail"] = Scripted("mail")
    return Dispatcher(cfg, store, notifiers, clock=world.clock), mail


def run(d: Dispatcher) -> Report:
    """One dispatcher run in its own event loop, the notifiers' connections closed with it (as a service stop)."""
    async def go() -> Report:
        try:
            return await d.run_once()
        finally:
            for n in d.notifiers.values():
                await n.aclose()

    return run_async(go())


SNS = re.compile(r"261121-\d{15}")


def test_dingtalk_splits_a_big_group_within_its_bytes_and_mentions_on_the_last_stage(world: World) -> None:
    cfg = world.config("ding")
    store = Store(world.tmp / "agent.db")
    hostile = "质量太差<@all> @13900009999 [领红包](http://evil.example) ![x](http://evil.example/x.png) _斜_ " * 3
    items = [item(n, timedelta(minutes=20) if n < 3 else timedelta(hours=5), reason=hostile) for n in range(60)]
    queue(cfg, store, 0, items)
    d, _ = dispatcher(cfg, store, world)
    run(d)
    got = world.dingtalk.delivered("dt")
    assert len(got) >= 2 and all(len(m.content.encode()) <= 18_500 for m in got)
    assert [m.extra["title"].rsplit(" ", 1)[-1] for m in got] == [f"({i}/{len(got)})" for i in range(1, len(got) + 1)]
    seen = [sn for m in got for sn in SNS.findall(m.content)]
    assert sorted(seen) == sorted(i.order_sn for i in items)  # every item once
    assert got[0].mentions == ("13800001111",) and all(m.mentions == () for m in got[1:])  # last stage first
    for m in got:  # buyer text cannot mention, link or embed
        assert "13900009999" not in m.mentions and "evil.example" not in " ".join(m.extra["links"])
        assert "<@all>" not in m.content and "![" not in m.content
    assert world.dingtalk.rejections() == []


def test_dingtalk_rate_limit_delays_and_loses_nothing_without_tripping_the_block(world: World) -> None:
    cfg = world.config("ding", shops=25)
    store = Store(world.tmp / "agent.db")
    for n in range(25):
        queue(cfg, store, n, [item(n, timedelta(hours=5))])
    d, _ = dispatcher(cfg, store, world)
    report = run(d)
    assert len(world.dingtalk.delivered("dt")) == 20 and report.deferred == 5
    assert "rate limit (20 per 65 s, dingtalk)" in {r["last_error"] for r in store.rows("pending")}
    world.clock.t += 30
    run(d)
    assert len(world.dingtalk.delivered("dt")) == 20  # still inside the window
    world.clock.t += 40
    run(d)
    assert len(world.dingtalk.delivered("dt")) == 25 and store.depth().get("pending", 0) == 0
    assert world.dingtalk.rejections() == []  # DingTalk's 10-minute block never triggered


def test_a_wrong_dingtalk_secret_is_permanent_and_the_last_stage_fails_over_at_once(world: World) -> None:
    cfg = world.config("ding", secret="SEC" + "0" * 64)
    store = Store(world.tmp / "agent.db")
    queue(cfg, store, 0, [item(1, timedelta(minutes=20)), item(2, timedelta(hours=5))])
    d, mail = dispatcher(cfg, store, world)
    run(d)
    assert "errcode 310000: sign not match" in store.broken()["ding"]
    run(d)
    texts = "\n".join(m.text for m in mail.sent)
    assert "通知渠道故障" in texts and "sign not match" in texts  # the admins, in DingTalk's own words
    assert item(1, timedelta(0)).order_sn in texts  # the last stage reached someone all the same
    assert item(2, timedelta(0)).order_sn not in texts  # a non-urgent stage is not copied


def test_feishu_posts_split_within_20kb_and_mention_by_open_id(world: World) -> None:
    cfg = world.config("fs")
    store = Store(world.tmp / "agent.db")
    items = [item(n, timedelta(minutes=20) if n < 2 else timedelta(hours=5), reason="尺码不合适" * 30)
             for n in range(80)]
    queue(cfg, store, 0, items)
    d, _ = dispatcher(cfg, store, world)
    run(d)
    world.clock.t += 2  # five a second: the rest goes on the next run
    run(d)
    got = world.feishu.delivered("fs")
    assert len(got) >= 2 and world.feishu.rejections() == []
    assert sorted(sn for m in got for sn in SNS.findall(m.content)) == sorted(i.order_sn for i in items)
    assert got[0].mentions == (ZHANG,) and all(m.mentions == () for m in got[1:])


def test_wecom_app_never_sends_what_wecom_would_drop_and_refreshes_its_token(world: World) -> None:
    cfg = world.config("boss", shops=40)
    store = Store(world.tmp / "agent.db")
    for n in range(40):
        queue(cfg, store, n, [item(n, timedelta(hours=5))])
    d, _ = dispatcher(cfg, store, world)
    run(d)
    assert len(world.app.delivered()) == 30 and world.app.dropped == []
    world.app.expire_tokens()
    world.clock.t += 61
    run(d)
    assert len(world.app.delivered()) == 40 and world.app.dropped == []  # nothing silently lost
    assert world.app.token_calls == 2 and world.app.rejections() == [42001]


@pytest.mark.parametrize("public", [True, False])
def test_a_login_qr_is_linked_where_the_channel_cannot_carry_images(world: World, public: bool) -> None:
    web = '[web]\npublic_url = "http://192.168.1.20:8700"\n' if public else ""
    cfg = world.config("ding", admin="ding")  # login notices go to the admin channel
    if web:
        (world.tmp / "config.toml").write_text((world.tmp / "config.toml").read_text() + web, encoding="utf-8")
        cfg = load_config(world.tmp / "config.toml")
    store = Store(world.tmp / "agent.db")
    buf = __import__("io").BytesIO()
    segno.make("https://mms.pinduoduo.com/qr/1").save(buf, kind="png")
    png = buf.getvalue()
    record_result(cfg, store, cfg.shops[0], ShopResult(name="店0", checked_at=NOW, state=ShopState.LOGIN_REQUIRED,
                                                       error="扫码登录", qr_png=png), NOW, qr_png=png)
    d, _ = dispatcher(cfg, store, world)
    run(d)
    [m] = world.dingtalk.delivered("dt")
    if public:
        [link] = m.extra["links"]
        token = re.fullmatch(r"http://192\.168\.1\.20:8700/qr/([\w-]{32})\.png", link)
        assert token and store.qr_png(token.group(1), world.clock.t) == png
        assert store.qr_png(token.group(1), world.clock.t + 901) is None  # short-lived
    else:
        assert m.extra["links"] == [] and "pdd-agent login --shop 店0 --qr" in m.content


def test_no_secret_reaches_the_log_the_store_or_a_notice_when_every_channel_fails(world: World) -> None:
    from loguru import logger

    cfg = world.config("ding", secret="SEC" + "1" * 64)
    text = (world.tmp / "config.toml").read_text(encoding="utf-8")
    text = text.replace(f'secret = "{FS_SECRET}"', 'secret = "wrong-feishu-secret"')
    text = text.replace(f'corp_secret = "{APP_SECRET}"', 'corp_secret = "wrong-app-secret-0000"')
    text = text.replace('notify = ["ding"]', 'notify = ["ding", "fs", "boss"]')
    (world.tmp / "config.toml").write_text(text, encoding="utf-8")
    cfg = load_config(world.tmp / "config.toml")
    store = Store(world.tmp / "agent.db")
    queue(cfg, store, 0, [item(1, timedelta(minutes=20))])
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG")
    try:
        d, mail = dispatcher(cfg, store, world)
        run(d)
        run(d)
    finally:
        logger.remove(sink)
    seen = "\n".join([*lines, *(str(r["last_error"]) for r in store.rows()), *store.broken().values(),
                      *(m.text for m in mail.sent)])
    assert "310000" in seen and "19021" in seen and "40001" in seen  # each failed, in its own words
    for secret in ("SEC" + "1" * 64, "wrong-feishu-secret", "wrong-app-secret-0000", "access_token=dt", "/hook/fs"):
        assert secret not in seen, secret
