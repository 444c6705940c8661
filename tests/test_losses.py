"""Losses beyond the deadlines: flags, item notices across checks, the 工单 / 平台退款 counters, and how they read."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from agent.core import losses
from agent.core.models import Item
from agent.core.render import group_title, render_group
from agent.core.rules import ItemState, RulesConfig, evaluate

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=TZ)
SHOP = "示例旗舰店"
ALL = frozenset(losses.WATCH_OF.values())
REASONS = ["质量", "描述不符", "破损"]


def item(item_id: str, hours: float, reason: str = "不想要了", kind: str = "aftersale", **flags: bool) -> Item:
    return Item(kind=kind, id=item_id, order_sn=f"261121-{item_id}", type="仅退款",  # type: ignore[arg-type]
                status="买家申请退款，待商家处理", reason=reason, goods_name="保温杯", refund_amount_fen=1290,
                deadline=T0 + timedelta(hours=hours), remaining_seconds=int(hours * 3600), **flags)


class Shop:
    """evaluate() and the item notices check after check, the states threaded like the store does."""

    def __init__(self, watching: frozenset[str] = ALL) -> None:
        self.states: dict[tuple[str, str], ItemState] = {}
        self.watching = watching
        self.keys: set[str] = set()  # the outbox: a key queued once is never queued again

    def check(self, aftersales: list[Item], evidence: list[Item] = (), platform: list[Item] = (),  # type: ignore[assignment]
              now: datetime = T0) -> list[str]:
        alerts, states = evaluate(SHOP, aftersales, evidence, self.states, RulesConfig(), now)
        new = {(s.kind, s.item_id): s for s in states}
        alerts += losses.item_notices(SHOP, aftersales, evidence, platform, self.states, new, self.watching, now)
        self.states = new
        fresh = [a.key for a in alerts if a.key not in self.keys]
        self.keys |= set(fresh)
        return [k.split(":", 3)[3] if k.count(":") >= 3 else k for k in fresh]


def test_mark_sets_the_flags_from_the_cards_and_the_reason() -> None:
    got = losses.mark([item("1", 30, "商品与描述不符"), item("2", 30), item("3", 30, "收到破损")],
                      complaint_ids={"2"}, urged_ids={"2", "3"}, reasons=REASONS)
    assert [(i.complaint, i.urged, i.quality_risk) for i in got] == [
        (False, False, True), (True, True, False), (False, True, True)]
    assert not losses.is_quality("不想要了", REASONS) and not losses.is_quality("质量问题", [])


def test_a_complaint_warning_is_told_at_once_and_once() -> None:
    shop = Shop()
    assert shop.check([item("1", 30)]) == []  # far from its deadline: nothing yet
    assert shop.check([item("1", 30, complaint=True)]) == ["complaint"]
    assert shop.check([item("1", 29, complaint=True)]) == []  # still on the card: not again
    assert shop.check([item("1", 20, complaint=True)]) == ["stage0"]  # the deadline stages go on as before


def test_quality_risk_is_told_on_first_sight_ahead_of_the_stages() -> None:
    shop = Shop()
    assert shop.check([item("1", 100, "质量太差了", quality_risk=True)]) == ["quality"]
    assert shop.check([item("1", 99, "质量太差了", quality_risk=True)]) == []
    assert Shop(ALL - {"quality"}).check([item("1", 100, quality_risk=True)]) == []


def test_urged_is_told_when_an_alerted_item_becomes_urged_and_marks_every_alert() -> None:
    shop = Shop()
    assert shop.check([item("1", 20)]) == ["stage0"]
    assert shop.check([item("1", 19, urged=True)]) == ["urged"]
    assert shop.check([item("1", 18, urged=True)]) == []
    assert shop.check([item("1", 18)]) == []  # left the card
    assert shop.check([item("1", 17, urged=True)]) == []  # urged again: its key was told already
    # urged before any alert: no notice of its own, the first stage alert carries 「买家已催」
    other = Shop()
    assert other.check([item("2", 20, urged=True)]) == ["stage0"]
    assert other.states[("aftersale", "2")].urged


def test_platform_intervention_is_one_notice_with_the_evidence_deadline_when_owed() -> None:
    shop = Shop()
    joined = item("5", 0, "商品破损", kind="evidence")
    assert shop.check([], platform=[joined]) == ["platform"]
    owed = item("5", 10, "商品破损", kind="evidence")
    assert shop.check([], evidence=[owed], platform=[joined]) == ["stage0"]  # the evidence stages follow
    notice = losses.item_notices(SHOP, [], [owed], [joined], {}, {}, ALL, T0)
    assert notice[0].item == owed  # the deadline comes from the 待商家举证 row


def test_a_new_episode_tells_again() -> None:
    shop = Shop()
    assert shop.check([item("1", 30, complaint=True)]) == ["complaint"]
    assert shop.check([]) == []  # left the list (handled, silently: never stage-alerted)
    assert shop.check([item("1", 60, complaint=True)]) == ["complaint#1"]


def counters(tickets: int | None = None, refunds: int | None = None) -> dict[str, int]:
    out = {}
    if tickets is not None:
        out[losses.TICKETS_LABEL] = tickets
    if refunds is not None:
        out[losses.REFUNDS_LABEL] = refunds
    return out


def run(seq: list[dict[str, int]], step_h: float = 1, cooldown_h: float = 6, watching: frozenset[str] = ALL,
        explained: int = 0) -> list[tuple[str, int, int]]:
    memory, out = losses.CounterMemory(), []
    for n, c in enumerate(seq):
        got, memory = losses.counter_notices(SHOP, c, memory, watching, cooldown_h * 3600,
                                             T0 + timedelta(hours=n * step_h), explained)
        out += [(a.event, a.count, a.was) for a in got]
        memory = losses.CounterMemory.from_dict(memory.to_dict())  # as the store keeps it
    return out


def test_work_orders_alert_rise_cool_down_and_clear() -> None:
    seq = [counters(0), counters(2), counters(2), counters(3), counters(1), counters(0), counters(0)]
    assert run(seq) == [("work_orders", 2, 0), ("work_orders", 3, 2), ("work_orders_cleared", 0, 1)]
    # the same count after the cooldown: told again
    assert run([counters(2)] * 8) == [("work_orders", 2, 0), ("work_orders", 2, 2)]  # at 0 h and 6 h
    assert run([counters(1), {}, counters(1)]) == [("work_orders", 1, 0)]  # a check without counters: no change
    assert run([counters(2)], watching=ALL - {"work_orders"}) == []


def test_platform_refunds_rising_beyond_the_told_timeouts() -> None:
    assert run([counters(refunds=0), counters(refunds=1), counters(refunds=1), counters(refunds=3),
                counters(refunds=2)]) == [("platform_refunds", 1, 0), ("platform_refunds", 3, 1)]
    # one auto-refund this check explains the rise: 「已超时自动退款」 told it already
    assert run([counters(refunds=1)], explained=1) == []


def test_rendered_notices_tell_what_to_do_and_by_when() -> None:
    urged = replace(item("1", 1.5, "质量太差了＜", complaint=True, urged=True, quality_risk=True))
    shop = Shop()
    shop.check([urged])
    alerts, _ = evaluate(SHOP, [urged], [], {}, RulesConfig(), T0)
    alerts += losses.item_notices(SHOP, [urged], [], [], {}, {}, ALL, T0)
    assert {a.kind for a in alerts} == {"aftersale", "complaint", "quality"}
    title = group_title(SHOP, alerts)
    assert "1 单投诉预警" in title and "1 单品质退款风险" in title and "1 单即将逾期" in title
    [msg] = render_group(SHOP, alerts, dialect="wecom", max_bytes=4096, detail_url=None, tz=TZ, now=T0)
    assert msg.markdown.count("订单 261121-1") == 1  # one block for the item, its notices merged in
    assert "【投诉预警】" in msg.markdown and "【品质退款风险】" in msg.markdown and "【买家已催】" in msg.markdown
    assert "联系买家" in msg.markdown and "截止 11月21日 11:30" in msg.markdown
    assert set(msg.keys) == {a.key for a in alerts}  # every merged alert is marked sent with the message


def test_counter_notices_render_with_the_work_order_link() -> None:
    got, _ = losses.counter_notices(SHOP, counters(2, 4), losses.CounterMemory(), ALL, 3600, T0)
    url = "https://mms.pinduoduo.com/aftersales/work_order/list"
    [msg] = render_group(SHOP, got, dialect="wecom", max_bytes=4096, tz=TZ,
                         detail_url=lambda a: url if a.kind == "work_orders" else "")
    assert "24小时内将逾期工单 **2 单**" in msg.markdown and f"[工单管理]({url})" in msg.markdown
    assert "24小时内平台同意退款 **4 单**" in msg.markdown and "联系买家补款" in msg.markdown
    assert msg.title == f"【{SHOP}】售后预警：2 个工单即将逾期，平台24小时内同意退款 4 单"
