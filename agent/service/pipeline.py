"""The pipeline: check shops, turn each result into queued alerts, send the outbox; one clock for all of it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from agent.browser.check import Checker
from agent.browser.pool import BrowserPool
from agent.browser.reader import ReadOptions
from agent.browser.saved import SavedSession
from agent.clock import Clock
from agent.config import Config, ShopConfig
from agent.core.models import ShopResult
from agent.core.rules import Alert
from agent.outbox.dispatch import Dispatcher, Report
from agent.outbox.enqueue import record_result
from agent.outbox.store import Fence, Store
from notifiers.base import Notifier


class Pipeline:
    """Checks and dispatch sharing one `Clock`: each read shop teaches it the backend's time, so stages,
    rendering and quiet hours run on the backend's time while due times and retries run on ours."""

    def __init__(self, config: Config, store: Store, pool: BrowserPool, sel: Mapping[str, Any],
                 notifiers: Mapping[str, Notifier], options: ReadOptions | None = None, *,
                 hold_qr_logins: bool = False, clock: Clock | None = None,
                 saved_for: Callable[[str], SavedSession] | None = None) -> None:
        self.config, self.store, self.pool, self.sel, self.notifiers = config, store, pool, sel, notifiers
        self.tz = ZoneInfo(config.agent.timezone)
        self.checker = Checker(config, pool, sel, options, hold_qr_logins=hold_qr_logins, defer_when_busy=True,
                               saved_for=saved_for)
        self.clock = clock or Clock(self.tz)

    def reconfigure(self, config: Config, sel: Mapping[str, Any]) -> None:
        """A reloaded config: the next checks and dispatch runs use it (a check in flight ends on the old one)."""
        self.config, self.sel = config, sel
        self.checker.reconfigure(config, sel)

    def detail_url(self, shop_name: str, alert: Alert) -> str:
        """An item's detail page; 工单管理 for work-order notices, the after-sales list for platform refunds."""
        shop = self.config.shop(shop_name)
        paths = self.sel["site"]["paths"]
        if shop is None:
            return ""
        if alert.kind == "work_orders" and alert.event == "work_orders":
            return shop.base_url + paths["work_orders"]
        if alert.kind == "platform_refunds":
            return shop.base_url + paths["aftersale_list"]
        if alert.item is None:
            return ""
        return shop.base_url + paths["detail"].format(id=alert.item.id, order_sn=alert.item.order_sn)

    async def check(self, shops: Sequence[ShopConfig] | None = None,
                    fences: Mapping[str, Fence] | None = None) -> list[ShopResult]:
        """Check `shops` (default: all enabled) and commit each result; a shop's fence (several nodes: one shop a
        check) refuses the commit of a check whose lease was taken over, and its error propagates."""
        chosen = [s for s in (shops if shops is not None else self.config.shops) if s.enabled]
        results = await self.checker.check_all(chosen)
        by_name = {s.name: s for s in chosen}
        for result in results:
            shop = by_name[result.name]
            if result.ok:
                self.clock.learn(result.checked_at.timestamp())
                now = result.checked_at
            else:
                now = self.clock.backend_local()
            record_result(self.config, self.store, shop, result, now, qr_png=result.qr_png,
                          queued_at=self.clock.now(), fence=(fences or {}).get(shop.name))
        return results

    async def keepalive(self, shop: ShopConfig) -> bool:
        return await self.checker.keepalive(shop)

    def stop_accepting(self) -> None:
        self.checker.stop_accepting()

    @property
    def in_flight(self) -> frozenset[str]:
        return self.checker.in_flight

    async def dispatch(self, rate_now: Callable[[], float] | None = None) -> Report:
        """Send what is due; `rate_now` (several nodes: the database's clock) runs the channels' rate windows."""
        return await Dispatcher(self.config, self.store, self.notifiers, self.detail_url, clock=self.clock,
                                rate_now=rate_now).run_once()
