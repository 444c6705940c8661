"""`pdd-agent demo`: the sandbox, a local WeCom group and inbox, and the real service, telling the whole story."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.browser.pool import BrowserPool
from agent.cli import logsetup
from agent.cli.demo_view import LocalInbox, email_text, wecom_text
from agent.cli.run_cmd import mms_url
from agent.config import load_config, locators
from agent.core.claims import item_key
from agent.core.models import ShopResult
from agent.outbox import holds
from agent.outbox.dispatch import build_notifiers
from agent.outbox.store import Store
from agent.sandbox.backend import Backend
from agent.sandbox.control import SandboxControl
from agent.sandbox.run import builtin_scenario
from agent.sandbox.server import SandboxServer
from agent.sandbox.wecom import FakeWeCom
from agent.service.scheduler import Service
from agent.web.app import WebServer, build_app

SHOP, QR_SHOP = "示例旗舰店", "示例专营店"
MALL = 100001
ESCALATING, URGED, RETURN, HOSTILE = 22750431611748, 22750431607660, 22750431605991, 22750431608471
PROOF_SOON, PROOF_LATER = 22750431611419, 22750431613948
HOUR = 3600.0
CLOCK_RATE = 10.0  # sandbox seconds per real second between the jumps of the story
WECOM_KEY = "demo-group-robot"
TZ = ZoneInfo("Asia/Shanghai")

CONFIG = """\
[agent]
data_dir = "data"
pacing_seconds = 0.1
log_level = "WARNING"

[browser]
timeout_seconds = 15

[[shops]]
name = "{shop}"
base_url = "{url}"
username = "{shop}"
password_env = "PDD_DEMO_PASSWORD"

[[shops]]
name = "{qr_shop}"
base_url = "{url}"
username = "{qr_shop}"
password_env = "PDD_DEMO_PASSWORD"

[schedule]
check_interval = "5s"
jitter = "0"
keepalive_interval = "0"
dispatch_interval = "1s"
digest_cron = ""
shutdown_grace = "10s"

[watch]
# the story's hours pass in seconds: the 售后数据 counters and the watch cards are read on every check
refresh = "0"

[alerts]
notify = ["group"]
admin_notify = ["group", "boss-mail"]

[web]
listen = "127.0.0.1:{web_port}"
public_url = "http://127.0.0.1:{web_port}"
open_on_loopback = true

[[team.members]]
name = "张三"
mobile = "13900005678"

[notifiers.group]
type = "wecom"
webhook_url = "{webhook}"
mention_mobiles = ["13800001234"]

[notifiers.boss-mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "pdd-agent@demo.local"
to = ["boss@demo.local"]
"""


def yesterdays_refunds(now: float) -> list[dict[str, Any]]:
    """Refunds paid yesterday (local) for the digest's money section: a timeout, a 极速退款 after the goods were
    signed for, and one the merchant agreed to after signing (补款 only)."""
    local = datetime.fromtimestamp(now, TZ)
    noon = (local.replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)).timestamp()
    rows = [(1, "timeout", "", False, 1590, "质量问题，用了两天就坏了"),
            (2, "merchant", "极速退款", True, 4990, "不想要了"), (3, "merchant", "", True, 2590, "拍错了")]
    return [{"id": 22750431590000 + n, "orderSn": f"261120-{n:03d}66051837{n:04d}", "afterSalesType": 1,
             "state": "refunded", "refundAmount": fen, "orderAmount": fen, "refunded_ago": now - noon - 600 * n,
             "refundedBy": by, "refundTag": tag, "signed": signed, "reason": reason, "goodsName": "保温杯 500ml"}
            for n, by, tag, signed, fen, reason in rows]


def scenario() -> dict[str, Any]:
    """The demo scenario plus a second shop that only logs in by QR code (its login alert carries the QR)."""
    data = builtin_scenario("demo")
    data["shops"].append({"mall_id": 100002, "name": QR_SHOP, "items": [], "accounts": [
        {"username": QR_SHOP, "password": "demo-pass", "login": "qr_only", "mobile": "137****2468"}]})
    return data


class Director:
    """Moves the sandbox through the story and waits for the agent to notice each step."""

    def __init__(self, service: Service, control: SandboxControl, say: Callable[[str], None], fast: bool) -> None:
        self.service, self.control, self.say, self.fast = service, control, say, fast
        self.results: list[ShopResult] = []
        self.changed = asyncio.Event()
        service.on_check = self._seen

    def _seen(self, result: ShopResult) -> None:
        self.results.append(result)
        self.changed.set()

    async def checked(self, shop: str, after: float, timeout: float = 60.0) -> ShopResult:
        """The first check of `shop` that began at or after sandbox time `after` (a check is started now)."""
        seen = len(self.results)
        self.service.kick(f"check:{shop}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n, r in enumerate(self.results):
                # a read shop's checked_at is the backend's time; a failed check's is ours: take one that ended
                # after the kick
                if r.name == shop and (r.checked_at.timestamp() >= after - 1 if r.ok else n >= seen):
                    await self.settle()
                    return r
            self.changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=1.0)
        raise RuntimeError(f"the agent did not check {shop} within {timeout:.0f} s")

    async def settle(self) -> None:
        await self.service.dispatch()
        await asyncio.sleep(0.3 if self.fast else 2.0)

    def now(self) -> float:
        return float(self.control.clock()["now"])

    async def jump(self, hours: float, what: str) -> float:
        self.control.advance(hours * HOUR)
        self.say(f"⏩ 沙盒时间快进 {hours:g} 小时：{what}")
        return self.now()

    async def story(self) -> None:
        c = self.control
        self.say("① 代理启动，第一次检查两家店铺（即将到期的订单立刻提醒；专营店只能扫码登录）")
        t = self.now()
        await self.checked(SHOP, t)
        await self._wait_qr_page()  # the QR shop's check ended in 「需要登录」 and its QR page stays open
        await self.settle()
        self.say("② 客服处理了「买家催处理」的订单，并为快逾期的举证单提交了凭证")
        c.handle(URGED)
        c.handle(PROOF_SOON)
        await self.checked(SHOP, self.now())
        self.say("③ 店长用拼多多商家版App扫描了群里的登录二维码，并在手机上确认登录")
        c.scan_qr(QR_SHOP, confirm=False)  # 「扫码成功 / 请在手机上确认登录」
        await asyncio.sleep(0.5)
        c.scan_qr(QR_SHOP)
        await self._wait_logged_in(QR_SHOP)
        t = await self.jump(1.5, "重点关注的订单「尺码不合适」进入 24 小时提醒")
        await self.checked(SHOP, t)
        self.say("   客服张三在团队页面上认领了「尺码不合适」：之后 6 小时的提醒不再群发，2 小时和 30 分钟的提醒"
                 "仍然群发，并标明「已认领：张三」、@ 张三")
        holds.act(self.service.config, self.service.store, item_key(SHOP, "aftersale", str(ESCALATING)), "claim",
                  "张三", self.service.clock.backend_local(), self.service.clock.now())
        holds.act(self.service.config, self.service.store, item_key(SHOP, "aftersale", str(ESCALATING)), "note",
                  "张三", self.service.clock.backend_local(), self.service.clock.now(), text="已联系买家，换码处理中")
        self.service.changed("items")
        self.say("④ 客服处理了投诉预警单，也提交了另一单的举证")
        c.handle(HOSTILE)
        c.handle(PROOF_LATER)
        await self.checked(SHOP, self.now())
        t = await self.jump(4.0, "「物流无退回轨迹」的退货单没人处理，平台自动退款")
        await self.checked(SHOP, t)
        self.say("⑤ 工单管理里有 2 个工单 24 小时内将逾期；平台判定了已举证的那一单，直接退款给买家")
        c.set_tickets(MALL, 2)
        c.platform_refund(PROOF_LATER)
        await self.checked(SHOP, self.now())
        self.say("   客服在「工单管理」里处理完了这两个工单")
        c.set_tickets(MALL, 0)
        await self.checked(SHOP, self.now())
        t = await self.jump(14.0, "「尺码不合适」还剩约 5 小时")
        await self.checked(SHOP, t)
        t = await self.jump(3.7, "还剩不到 2 小时")
        await self.checked(SHOP, t)
        t = await self.jump(1.4, "还剩不到 30 分钟：最后一级提醒，@ 负责人并抄送邮件")
        await self.checked(SHOP, t)
        self.say("⑥ 客服在最后关头处理了这一单")
        c.handle(ESCALATING)
        await self.checked(SHOP, self.now())
        self.say("⑦ 第二天早上的每日汇总：昨天不是商家同意的退款（损失）和可联系买家补款的订单")
        c.add_items(MALL, yesterdays_refunds(self.now()))
        await self.service.digest()
        await self.settle()

    async def _wait_qr_page(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while QR_SHOP not in self.service.qr_waits and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if QR_SHOP not in self.service.qr_waits:
            raise RuntimeError("the agent did not keep a QR login page open")

    async def _wait_logged_in(self, shop: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(r.name == shop and r.ok for r in self.results):
                await self.settle()
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{shop} did not log in after the QR scan")


class Printer:
    """Prints what the WeCom group and the inbox receive, as they arrive."""

    def __init__(self, wecom: FakeWeCom, inbox: LocalInbox, color: bool, offset: Callable[[], float]) -> None:
        self.wecom, self.inbox, self.color, self.offset = wecom, inbox, color, offset
        self.seen = 0
        self.mails = 0

    def poll(self) -> None:
        messages = self.wecom.messages(WECOM_KEY)
        for msg in messages[self.seen:]:  # stamped with the sandbox's time, like the deadlines in the text
            print(wecom_text(replace(msg, time=msg.time + self.offset()), self.color, tz=TZ), flush=True)
        self.seen = len(messages)
        for mail in self.inbox.take():
            self.mails += 1
            print(email_text(mail, self.color), flush=True)

    async def run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(0.2)


def web_port() -> int:
    """8700 (the service's default) when it is free, else any free port."""
    for port in (8700, 0):
        with socket.socket() as s, suppress(OSError):
            s.bind(("127.0.0.1", port))
            return int(s.getsockname()[1])
    return 0


def run_demo(*, port: int = 0, fast: bool = False, color: bool | None = None) -> int:
    color = sys.stdout.isatty() if color is None else color
    logsetup.setup("ERROR")
    backend = Backend()
    backend.load_scenario(scenario())
    with tempfile.TemporaryDirectory(prefix="pdd-agent-demo-") as tmp:
        sandbox = SandboxServer(backend, port=port).start()
        wecom = FakeWeCom(keys={WECOM_KEY}).start()
        inbox = LocalInbox().start()
        try:
            path = Path(tmp) / "config.toml"
            path.write_text(CONFIG.format(shop=SHOP, qr_shop=QR_SHOP, url=sandbox.url, webhook=wecom.webhook_url(
                WECOM_KEY), smtp_port=inbox.port, web_port=web_port()), encoding="utf-8")
            os.environ["PDD_DEMO_PASSWORD"] = "demo-pass"
            with SandboxControl(sandbox.url) as control:
                control.set_clock(rate=CLOCK_RATE)
                printer = Printer(wecom, inbox, color, lambda: float(control.clock()["offset"]))
                return asyncio.run(_demo(path, control, printer, fast, color))
        finally:
            inbox.stop()
            wecom.stop()
            sandbox.stop()


async def _demo(path: Path, control: SandboxControl, printer: Printer, fast: bool, color: bool) -> int:
    config = load_config(path)
    cyan, bold, reset = ("\033[36m", "\033[1m", "\033[0m") if color else ("", "", "")

    def say(text: str) -> None:
        printer.poll()
        print(f"\n{cyan}{bold}{text}{reset}", flush=True)

    print(f"{bold}pdd-agent 演示 / demo{reset}：模拟商家后台 {control.base_url}，时钟加速 {CLOCK_RATE:g} 倍；"
          "下面是店铺的企业微信群和店长邮箱会收到的内容。按 Ctrl-C 可随时结束。", flush=True)
    store = Store(config.store_at())
    notifiers = build_notifiers(config)
    started = time.monotonic()
    outcome = "完成 / finished"
    sel = locators.load()
    async with BrowserPool.from_config(config.browser, headless=True) as pool:
        service = Service(config, store, pool, sel, notifiers)
        page = WebServer(build_app(config, store, service, mms_url(config, sel)), config.listen_addresses())
        await page.start()
        print(f"{bold}团队页面 / team page{reset}：{page.urls[0]}/ "
              "（演示期间可在浏览器中打开：待办、认领、店铺、渠道、历史）", flush=True)
        director = Director(service, control, say, fast)
        printing = asyncio.create_task(printer.run())
        story = asyncio.create_task(director.story())
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, story.cancel)
        service.start()
        try:
            await story
        except asyncio.CancelledError:
            outcome = "已中断 / interrupted"
        except RuntimeError as exc:
            outcome = f"未完成 / incomplete: {exc}"
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            await service.shutdown(grace=10)
            await _drain(service, printer, timeout=5 if outcome.startswith("已中断") else 70)
            printing.cancel()
            printer.poll()
            for n in notifiers.values():
                await n.aclose()
            await page.stop()
    ok = print_summary(store, printer, service, time.monotonic() - started, outcome, bold, reset)
    store.close()
    return 0 if ok and outcome.startswith("完成") else 1


async def _drain(service: Service, printer: Printer, timeout: float) -> None:
    """Wait for the outbox to empty (a WeCom robot takes 20 messages a minute), printing as they arrive."""
    deadline = time.monotonic() + timeout
    while service.store.depth().get("pending", 0) and time.monotonic() < deadline:
        await service.dispatch()
        printer.poll()
        await asyncio.sleep(1.0)


def print_summary(store: Store, printer: Printer, service: Service, took: float, outcome: str,
                  bold: str, reset: str) -> bool:
    sent = [{**r, "payload": json.loads(r["payload"])} for r in store.rows("sent")]
    events: Counter[str] = Counter()
    lost = 0
    for row in sent:
        p = row["payload"]
        event = str(p.get("event", "digest"))
        if "digest" in p and (p["digest"] or {}).get("money"):
            events["money"] += 1
        kind = "stage" if event.startswith("stage") else event
        if row["channel"] == "group":
            events[kind] += 1
            if event == "auto_refunded" and p.get("item"):
                lost += int(p["item"].get("refund_amount_fen", 0))
    escalating = sorted({r["payload"]["event"] for r in sent if r["payload"].get("item")
                         and str(r["payload"]["item"].get("id")) == str(ESCALATING)
                         and str(r["payload"].get("event", "")).startswith("stage")})
    claimed = [r for r in sent
               if r["channel"] == "group" and (r["payload"].get("claim") or {}).get("member") == "张三"]
    checks = sum(s.checks for s in service.status.values())
    failures = sum(s.failures for s in service.status.values())
    lines = [
        f"\n{bold}══ 演示结束 / demo summary：{outcome}，用时 {took:.0f} 秒 ══{reset}",
        f"检查店铺 {checks} 次，其中未读取 {failures} 次（专营店需要扫码登录，扫码后恢复）",
        f"企业微信群收到 {printer.seen} 条消息，店长邮箱收到 {printer.mails} 封邮件",
        f"提醒：阶段提醒 {events['stage']} 条，已处理确认 {events['handled']} 条，"
        f"自动退款 {events['auto_refunded']} 条（损失 ¥{lost / 100:.2f}），登录提醒 {events['login_required']} 条，"
        f"恢复 {events['recovered']} 条",
        f"截止之外：投诉预警 {events['complaint']} 条，品质退款风险 {events['quality']} 条，"
        f"平台介入 {events['platform']} 条，工单 {events['work_orders']} 条，平台退款 {events['platform_refunds']} 条，"
        f"每日汇总（含退款核对）{events['money']} 条",
        f"重点订单 {ESCALATING}：逐级提醒 {len(escalating)} 次（{', '.join(escalating)}），"
        f"张三认领后 6 小时提醒未群发，{len(claimed)} 条提醒标明「已认领：张三」，最后被处理",
        f"待发送 {store.depth().get('pending', 0)} 条，失败 {store.depth().get('dead', 0)} 条",
    ]
    print("\n".join(lines), flush=True)
    return (len(escalating) >= 3 and len(claimed) >= 2 and events["handled"] >= 2 and events["auto_refunded"] >= 1
            and events["login_required"] >= 1 and events["recovered"] >= 1 and events["complaint"] >= 1
            and events["quality"] >= 1 and events["money"] >= 1 and events["work_orders"] >= 1
            and events["work_orders_cleared"] >= 1 and events["platform_refunds"] >= 1
            and not store.depth().get("dead"))
