"""The service's health snapshot (shops, outbox, counters), its heartbeat file, the /healthz verdict, /metrics text."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.rules import ItemState
from agent.files import write_private

if TYPE_CHECKING:
    from agent.config import Config
    from agent.outbox.store import Store

HEARTBEAT_FILE = "heartbeat.json"
_OUTBOX_STATUSES = ("pending", "sent", "dead")


@dataclass
class ShopStatus:
    """One shop as the service sees it. Times are Unix seconds (float) or None."""

    name: str
    enabled: bool = True
    state: str = "unknown"  # ShopState value of the last check ("ok", "login_required", ...)
    last_check: float | None = None
    last_ok: float | None = None  # the last successful read
    last_error: str | None = None
    consecutive_failures: int = 0
    pending_aftersale: int = 0  # open items as the last successful check saw them
    pending_evidence: int = 0
    next_deadline: float | None = None  # the earliest open deadline
    interval_seconds: float = 0.0  # the expected gap between checks (0: a cron schedule)
    next_run: float | None = None  # the next scheduled check
    stale_after: float | None = None  # /healthz is unhealthy once now passes this without a successful read
    checks: int = 0  # checks run by this process
    failures: int = 0  # of which failed
    last_duration: float | None = None  # seconds the last check took
    duration_sum: float = 0.0  # total seconds of this process's checks
    finding: str | None = None  # the latest check's last consistency finding (rows vs total, …)


@dataclass
class Snapshot:
    """The whole service: written to the heartbeat file, served by /healthz and /metrics, read by `status`."""

    pid: int
    version: str
    started_at: float
    updated_at: float
    scheduler_running: bool = False
    paused: bool = False  # shutting down: no new work is started
    shops: list[ShopStatus] = field(default_factory=list)
    outbox: dict[str, int] = field(default_factory=dict)  # rows by status: pending, sent, dead
    messages_sent: dict[str, int] = field(default_factory=dict)  # channel → messages delivered by this process
    alerts_sent: dict[str, int] = field(default_factory=dict)  # channel → alert rows delivered by this process
    send_failures: dict[str, int] = field(default_factory=dict)  # channel → failed send attempts
    # channel → failed attempts by class: transient, rate_limited (the service throttled us), permanent
    send_failure_classes: dict[str, dict[str, int]] = field(default_factory=dict)
    broken_channels: dict[str, str] = field(default_factory=dict)  # channel → why it is marked broken
    dispatch_interval: float = 10.0
    # channel → {state: ok | failing | broken, type, limited, failing_since, failures, last_error, next_try,
    # waiting, unverified, maybe_repeated}
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the host's request budget and lanes: budget, rate (now), taken, slowdowns, busiest_second, deferred,
    # request_lane, page_lane
    requests: dict[str, float] = field(default_factory=dict)
    # several nodes: this node's name and whether its worker runs, every node (name, heartbeat age s, state:
    # ok | silent | stopped), the shared check jobs by status; {} on one machine
    cluster: dict[str, Any] = field(default_factory=dict)
    # the config file: digest, loaded_at, and the last refused reload (failed_at, error); {} when not known
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Compact JSON by the C encoder (an indent or `asdict` costs 36 ms instead of 5 for 1,000 shops, on the
        event loop, twice a second while a round runs)."""
        data = {**vars(self), "shops": [vars(s) for s in self.shops]}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        data: dict[str, Any] = json.loads(text)
        shops = [ShopStatus(**s) for s in data.pop("shops", [])]
        return cls(shops=shops, **data)


class LoopLag:
    """How late the event loop wakes a short sleep: a blocked loop delays every request and timer of the host."""

    PERIOD = 0.05

    def __init__(self) -> None:
        self.max = 0.0  # seconds, the worst since start
        self.recent = 0.0  # the worst since the last `take_recent()`
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(self.PERIOD)
            lag = max(0.0, loop.time() - t - self.PERIOD)
            self.max, self.recent = max(self.max, lag), max(self.recent, lag)

    def take_recent(self) -> float:
        got, self.recent = self.recent, 0.0
        return round(got, 3)


def write_heartbeat(data_dir: Path, snapshot: Snapshot) -> Path:
    """Atomically replace data_dir/heartbeat.json (mode 0600)."""
    path = data_dir / HEARTBEAT_FILE
    write_private(path, snapshot.to_json())
    return path


def read_heartbeat(data_dir: Path) -> Snapshot | None:
    """The last heartbeat, or None when there is none or it cannot be read."""
    try:
        return Snapshot.from_json((data_dir / HEARTBEAT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None


# ---- building a snapshot from the store ---------------------------------------------------------
def shop_statuses(config: Config, store: Store) -> list[ShopStatus]:
    """One ShopStatus per configured shop, as the store remembers it (state, last read, open items).

    Only what the store keeps is filled in: the service adds next_run, stale_after and its own counters.
    """
    out: list[ShopStatus] = []
    for shop in config.shops:
        health = store.shop_health(shop.name)
        pending = {"aftersale": 0, "evidence": 0}
        earliest: float | None = None
        for raw in store.load_items(shop.name).values():
            try:
                item = ItemState.from_dict(raw)
            except (KeyError, TypeError, ValueError):  # a row of an older or foreign shape: not an open item
                continue
            if item.closed or item.kind not in pending:
                continue
            pending[item.kind] += 1
            deadline = item.deadline.timestamp()
            earliest = deadline if earliest is None else min(earliest, deadline)
        out.append(ShopStatus(
            name=shop.name, enabled=shop.enabled, state=health.last_state or "unknown",
            last_ok=health.last_ok, last_error=health.last_error, consecutive_failures=health.consecutive_failures,
            pending_aftersale=pending["aftersale"], pending_evidence=pending["evidence"], next_deadline=earliest,
            interval_seconds=config.schedule.interval_of(shop),
        ))
    return out


# ---- /healthz -----------------------------------------------------------------------------------
def _when(ts: float, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S")


def healthz(snap: Snapshot, now: float, tz: tzinfo | None = None) -> tuple[bool, list[str]]:
    """Healthy when the scheduler runs, the service is not stopping and every enabled shop was read recently.

    One reason per problem (English + 中文); times in `tz` (None: the host's local time).
    """
    reasons: list[str] = []
    if not snap.scheduler_running:
        reasons.append("scheduler not running (调度器未运行)")
    if snap.paused:
        reasons.append("service is shutting down, no new checks start (服务正在停止，不再开始新的检查)")
    if snap.cluster and not snap.cluster.get("worker"):
        reasons.append(f"cluster node {snap.cluster.get('node')}: its worker is not taking checks "
                       f"({snap.cluster.get('error') or 'stopped'}) (本节点未在分担检查)")
    for shop in snap.shops:
        if not shop.enabled or (shop.stale_after is not None and now <= shop.stale_after):
            continue
        since = "never read" if shop.last_ok is None else f"not read since {_when(shop.last_ok, tz)}"
        line = f"shop {shop.name}: {since} (超过两个检查周期未成功读取)"
        if shop.state not in ("ok", "unknown"):
            line += f", last state {shop.state}"
        reasons.append(line)
    return not reasons, reasons


# ---- /metrics (Prometheus text format 0.0.4) ------------------------------------------------------
_Sample = tuple[str, Mapping[str, str], float]  # name suffix ("", "_sum", "_count"), labels, value


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class _Exposition:
    """Collects metric families: HELP and TYPE once per family, then its samples."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.lines: list[str] = []

    def family(self, name: str, kind: str, doc: str, samples: Iterable[_Sample]) -> None:
        full = self.prefix + name
        doc = doc.replace("\\", "\\\\").replace("\n", "\\n")
        self.lines += [f"# HELP {full} {doc}", f"# TYPE {full} {kind}"]
        for suffix, labels, value in samples:
            if labels:
                inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
                self.lines.append(f"{full}{suffix}{{{inner}}} {_number(value)}")
            else:
                self.lines.append(f"{full}{suffix} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_metrics(snap: Snapshot, now: float, tz: tzinfo | None = None) -> str:
    """The snapshot in Prometheus text exposition format 0.0.4 (counters are named *_total, as Prometheus wants)."""
    out = _Exposition("pdd_agent_")
    shops = snap.shops

    def per_shop(value: Callable[[ShopStatus], float | None]) -> list[_Sample]:
        return [("", {"shop": s.name}, v) for s in shops if (v := value(s)) is not None]

    def per_channel(values: Mapping[str, int]) -> list[_Sample]:
        return [("", {"channel": c}, n) for c, n in sorted(values.items())]

    out.family("up", "gauge", "1 while the agent process answers.", [("", {}, 1)])
    out.family("scheduler_running", "gauge", "1 while the check scheduler runs.",
               [("", {}, int(snap.scheduler_running))])
    out.family("healthy", "gauge", "1 when /healthz answers 200.", [("", {}, int(healthz(snap, now, tz)[0]))])
    out.family("start_time_seconds", "gauge", "When the agent process started (Unix seconds).",
               [("", {}, snap.started_at)])
    out.family("shop_enabled", "gauge", "1 when the shop is enabled in the config.", per_shop(lambda s: s.enabled))
    out.family("checks_total", "counter", "Checks run by this process.", per_shop(lambda s: s.checks))
    out.family("check_failures_total", "counter", "Checks of this process that failed.",
               per_shop(lambda s: s.failures))
    out.family("check_duration_seconds", "summary", "Time the checks of this process took.",
               [(suffix, {"shop": s.name}, v) for s in shops
                for suffix, v in (("_sum", s.duration_sum), ("_count", s.checks))])
    out.family("last_check_duration_seconds", "gauge", "Time the last check took.",
               per_shop(lambda s: s.last_duration))
    out.family("last_success_timestamp_seconds", "gauge", "When the shop was last read successfully (Unix seconds).",
               per_shop(lambda s: s.last_ok))
    out.family("consecutive_failures", "gauge", "Failed checks since the last successful read.",
               per_shop(lambda s: s.consecutive_failures))
    out.family("shop_up", "gauge", "1 when the shop's last check read it successfully.",
               per_shop(lambda s: int(s.state == "ok")))
    out.family("items_pending", "gauge", "Open items as the last successful check saw them.",
               [("", {"shop": s.name, "kind": kind}, n) for s in shops
                for kind, n in (("aftersale", s.pending_aftersale), ("evidence", s.pending_evidence))])
    out.family("next_deadline_timestamp_seconds", "gauge", "The earliest deadline of an open item (Unix seconds).",
               per_shop(lambda s: s.next_deadline))
    out.family("messages_sent_total", "counter", "Messages delivered by this process.",
               per_channel(snap.messages_sent))
    out.family("alerts_sent_total", "counter", "Alert rows delivered by this process.", per_channel(snap.alerts_sent))
    out.family("send_failures_total", "counter", "Failed send attempts of this process.",
               per_channel(snap.send_failures))
    out.family("send_failures_by_class_total", "counter", "Failed send attempts of this process by class: "
               "transient, rate_limited (the channel's service throttled us), permanent.",
               [("", {"channel": c, "class": k}, n) for c, by in sorted(snap.send_failure_classes.items())
                for k, n in sorted(by.items())])
    out.family("outbox_rows", "gauge", "Outbox rows by status.",
               [("", {"status": st}, snap.outbox.get(st, 0)) for st in _OUTBOX_STATUSES]
               + [("", {"status": st}, n) for st, n in sorted(snap.outbox.items()) if st not in _OUTBOX_STATUSES])
    channels = sorted({*snap.messages_sent, *snap.alerts_sent, *snap.send_failures, *snap.broken_channels,
                       *snap.channels})
    out.family("channel_broken", "gauge", "1 while the channel is marked broken (its messages wait).",
               [("", {"channel": c}, int(c in snap.broken_channels)) for c in channels])
    view = {c: snap.channels.get(c, {}) for c in channels}
    out.family("channel_failing", "gauge", "1 while sends to the channel fail (it is retried on its own backoff).",
               [("", {"channel": c}, int(v.get("state") == "failing")) for c, v in view.items()])
    out.family("channel_failing_seconds", "gauge", "How long the channel has been failing (0 when it is not).",
               [("", {"channel": c}, round(snap.updated_at - v["failing_since"], 1) if v.get("failing_since") else 0)
                for c, v in view.items()])
    out.family("channel_rate_limited", "gauge", "1 while the channel's service rate-limits us (its block is waited "
               "out; the agent's own limits normally prevent this).",
               [("", {"channel": c}, int(bool(v.get("limited")))) for c, v in view.items()])
    out.family("channel_sent_unverified_rows", "gauge", "Alert rows the channel accepted without confirming "
               "delivery (Apprise: an HTTP status only).",
               [("", {"channel": c}, v.get("unverified", 0)) for c, v in view.items()])
    out.family("channel_sent_maybe_repeated_rows", "gauge", "Alert rows sent again because the outcome of an "
               "earlier send was lost (a crash or a node's death between the send and its record): possibly twice.",
               [("", {"channel": c}, v.get("maybe_repeated", 0)) for c, v in view.items()])
    out.family("channel_rows_waiting", "gauge", "Outbox rows of the channel not yet sent.",
               [("", {"channel": c}, v.get("waiting", 0)) for c, v in view.items()])
    out.family("channel_next_try_seconds", "gauge", "Seconds until a failing channel is tried again (0: now).",
               [("", {"channel": c}, max(0.0, round((v.get("next_try") or 0) - snap.updated_at, 1)))
                for c, v in view.items()])
    conf = snap.config
    if conf:
        out.family("config_loaded_timestamp_seconds", "gauge", "When the running config was loaded (start or the last "
                   "good reload).", [("", {"digest": str(conf.get("digest", ""))}, conf.get("loaded_at", 0))])
        failed = conf.get("failed_at") or 0
        out.family("config_reload_failed", "gauge", "1 while the last reload was refused (the service runs on the "
                   "previous config).", [("", {}, int(failed > conf.get("loaded_at", 0)))])
    c = snap.cluster
    if c:
        out.family("cluster_nodes", "gauge", "Nodes sharing the work, by state (ok, silent: past the stall timeout, "
                   "stopped).", [("", {"state": st}, sum(1 for n in c.get("nodes", []) if n["state"] == st))
                                 for st in ("ok", "silent", "stopped")])
        out.family("cluster_check_jobs", "gauge", "The shared check jobs by status (todo: waiting for a node, doing, "
                   "failed: a node died under it).", [("", {"status": st}, c.get("jobs", {}).get(st, 0))
                                                     for st in ("todo", "doing", "failed")])
        out.family("cluster_worker_up", "gauge", "1 while this node's worker takes shared checks.",
                   [("", {"node": str(c.get("node", ""))}, int(bool(c.get("worker"))))])
    req = snap.requests
    if req:
        out.family("request_budget_per_second", "gauge", "Backend requests per second the host may send now "
                   "(the budget, lowered for a while after a rate limit).", [("", {}, req.get("rate", 0))])
        out.family("backend_requests_total", "counter", "Backend requests (budget turns) of this process.",
                   [("", {}, req.get("taken", 0))])
        out.family("rate_limit_slowdowns_total", "counter", "Rate-limit answers that slowed the whole host down.",
                   [("", {}, req.get("slowdowns", 0))])
        out.family("signed_hosts", "gauge", "Backend hosts that asked for Anti-Content: their calls go signed for "
                   "[api] signing_memory.", [("", {}, req.get("signed_hosts", 0))])
        out.family("signer_pages", "gauge", "Signer pages open (one per network identity).",
                   [("", {}, req.get("signers", 0))])
        out.family("signer_tokens", "gauge", "Anti-Content tokens the open signer pages minted.",
                   [("", {}, req.get("signer_tokens", 0))])
        out.family("requests_busiest_second", "gauge", "The most budget turns any rolling second handed out.",
                   [("", {}, req.get("busiest_second", 0))])
        out.family("reads_deferred_total", "counter", "Non-urgent reads left for a later check while the host was "
                   "busy.", [("", {}, req.get("deferred", 0))])
        out.family("event_loop_lag_seconds", "gauge", "How late the event loop woke a 50-ms sleep: the worst "
                   "since the last snapshot (window=recent) and since start (window=run).",
                   [("", {"window": "recent"}, req.get("loop_lag_recent", 0)),
                    ("", {"window": "run"}, req.get("loop_lag_max", 0))])
        out.family("work_in_lane", "gauge", "Checks working in each lane now.",
                   [("", {"lane": "requests"}, req.get("request_lane", 0)),
                    ("", {"lane": "pages"}, req.get("page_lane", 0))])
    return out.text()


def channel_view(names: Iterable[str] | Mapping[str, Any], states: Mapping[str, Any],
                 owed: Mapping[str, Mapping[str, int]], broken: Mapping[str, str],
                 unverified: Mapping[str, int] | None = None,
                 repeated: Mapping[str, int] | None = None) -> dict[str, dict[str, Any]]:
    """Each channel's delivery state for status and /metrics, from the configured channels (name → their config),
    the store's channel states, queue and unverified sends."""
    out: dict[str, dict[str, Any]] = {}
    configs = names if isinstance(names, Mapping) else {}
    known = dict.fromkeys((*names, *broken, *owed, *(k for k, v in states.items() if v.failing)))
    for name in known:
        st, n = states.get(name), owed.get(name, {})
        failing = st is not None and st.failing
        error = (broken.get(name) or (st.last_error if failing else None)) if st or name in broken else None
        out[name] = {
            "state": "broken" if name in broken else "failing" if failing else "ok",
            "type": str(getattr(configs.get(name), "type", "")),
            "limited": bool(failing and name not in broken and (error or "").startswith("rate-limited: ")),
            "failing_since": st.failing_since if failing else None, "failures": st.failures if failing else 0,
            "last_error": error, "next_try": st.next_try if failing else None, "waiting": sum(n.values()),
            "unverified": (unverified or {}).get(name, 0), "maybe_repeated": (repeated or {}).get(name, 0),
        }
    return out
