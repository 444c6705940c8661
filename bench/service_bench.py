"""Benchmark of the real `pdd-agent run` process per shop count: start-up, steady-state cost, alert latency, stop.

Run: .venv/bin/python -m bench.service_bench [--shops 1,50,200,1000] [--budget 50] [--json out.json]
Production pacing (1 s between a shop's requests), the host budget as given; 60-s check intervals up to 200 shops,
10 minutes beyond (`--interval` sets one for all). The sandbox reports the busiest second it saw (peak req/s).
The agent is `python -m agent run --config F` against the sandbox (its own process, as in bench.run_bench) and a
fake WeCom (a thread of this process). CPU and PSS are the agent's process tree only: Python, the Playwright driver
and Chromium. Sessions and the learned request plan are primed over HTTP (routine API-mode checks); a first start
with no saved session (login and read in page mode) is measured once, with one shop. Check durations come from the
agent's log lines "shop X checked: ... in 1.23s" (the check itself), and from the pdd_agent_check_duration_seconds
summary (per shop sum/count: the check's own work, as in the log).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, cast

import httpx
from prometheus_client.parser import text_string_to_metric_families

from agent.browser.shopfiles import shop_dir
from agent.config import load_config
from agent.sandbox.control import SandboxControl
from agent.sandbox.generate import AUTO_REFUND_WINDOW, generate_items, generate_scenario
from agent.sandbox.wecom import FakeWeCom
from bench.procstat import cpu_seconds, pss_by_kind, pss_mib
from bench.run_bench import PASSWORD, prime_sessions, start_sandbox

ROOT = Path(__file__).resolve().parents[1]
JITTER, DISPATCH = 10, 10
SCHEDULE = {"jitter": f"{JITTER}s", "dispatch_interval": f"{DISPATCH}s", "keepalive_interval": "0", "digest_cron": "",
            "shutdown_grace": "60s"}


class Setup(NamedTuple):
    """One run's limits: the check interval (s), [agent] max_requests_per_second, [browser] limits."""

    interval: int
    budget: float
    checks: int
    pages: int
OPS_KEY, PROBE_KEY = "bench-ops-0f3a", "bench-probe-7c1e"  # not the channel names: keys are redacted
PROBE_DEADLINE = 20 * 60  # inside the last after-sales stage (30m)
CHECKED = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \S+ +shop (.+?) checked: state=(\S+) mode=(\S+) .* in ([\d.]+)s$")
NOTABLE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (WARNING|ERROR|CRITICAL)")
Metrics = dict[str, dict[str, float]]  # sample name -> joined label values ("" when none) -> value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, url: str, shops: list[dict[str, Any]], data_dir: Path, port: int, wecom: FakeWeCom,
                 setup: Setup) -> Path:
    """Production defaults but the schedule; the first shop alerts on its own robot key (the latency probe)."""
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = ["[web]", f'listen = "127.0.0.1:{port}"', "open_on_loopback = true",  # the viewers need no login
             "[agent]", f"data_dir = {q(str(data_dir))}", "pacing_seconds = 1.0",
             f"max_requests_per_second = {setup.budget}",
             "[browser]", f"max_pages = {setup.pages}", f"max_concurrent_checks = {setup.checks}",
             "timeout_seconds = 30", "[schedule]", f"check_interval = {q(f'{setup.interval}s')}",
             *(f"{k} = {q(v)}" for k, v in SCHEDULE.items()),
             "[alerts]", 'notify = ["ops"]', 'admin_notify = ["ops"]']
    for name, key in (("ops", OPS_KEY), ("probe", PROBE_KEY)):
        lines += [f"[notifiers.{name}]", 'type = "wecom"', f"webhook_url = {q(wecom.webhook_url(key))}"]
    for i, shop in enumerate(shops):
        lines += ["[[shops]]", f"name = {q(shop['name'])}", f"base_url = {q(url)}",
                  f"username = {q(shop['accounts'][0]['username'])}", 'password_env = "BENCH_PASSWORD"']
        if i == 0:
            lines.append('notify = ["probe"]')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Viewers:
    """Open team pages (`n`), each as the browser's script does it: the 待办 page once, then an event stream and a
    refetch of the list on every "items" event. Counts the refetches."""

    def __init__(self, url: str, n: int) -> None:
        self.url, self.fetches, self.stop = url, 0, threading.Event()
        self.threads = [threading.Thread(target=self._view, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def _view(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            try:
                client.get("/")
                with client.stream("GET", "/events", timeout=None) as events:
                    for line in events.iter_lines():
                        if self.stop.is_set():
                            return
                        if line == "event: items":
                            client.get("/fragment/items")
                            self.fetches += 1
            except httpx.HTTPError:  # the agent stopped
                return

    def close(self) -> None:
        self.stop.set()


class Agent:
    """`python -m agent run` as a child process; its console output in a file, PSS sampled every second."""

    def __init__(self, config: Path, port: int, data_dir: Path, out: Path) -> None:
        self.port, self.log_path, self.out_path = port, data_dir / "logs" / "pdd-agent.log", out
        self._out = out.open("w")
        env = {**os.environ, "BENCH_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
        self.started = time.monotonic()
        # JSON lines: their times have milliseconds (a shop's gap is measured from them), read back by `human`
        self.proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config), "--log-json"],
                                     cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT, env=env)
        self.pss: list[tuple[float, float]] = []
        self.pss_kinds: dict[str, float] = {}  # peak PSS per kind of process (python, driver, chromium)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            kinds = pss_by_kind(self.proc.pid)
            self.pss.append((time.monotonic(), sum(kinds.values())))
            for k, v in kinds.items():
                self.pss_kinds[k] = max(self.pss_kinds.get(k, 0.0), v)

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)
        except httpx.HTTPError:
            return None

    def metrics(self) -> Metrics:
        r = self.get("/metrics")
        out: Metrics = {}
        if r is None or r.status_code != 200:
            return out
        for fam in text_string_to_metric_families(r.text):
            for s in fam.samples:
                out.setdefault(s.name, {})[",".join(v for _, v in sorted(s.labels.items()))] = s.value
        return out

    def wait(self, check: Callable[[], Any], what: str, timeout: float, every: float) -> float:
        """Seconds from the spawn until `check()` is truthy."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited ({self.proc.returncode}) while waiting for {what}")
            if check():
                return time.monotonic() - self.started
            time.sleep(every)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def stop(self) -> tuple[float, int | None]:
        """SIGTERM; (seconds until exit, exit code), None when it had to be killed after 180 s."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - t0
        self.close()
        return took, code

    def close(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._out.close()


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]  # nearest rank


def summary(xs: list[float]) -> dict[str, Any]:
    return {"n": len(xs), "median": statistics.median(xs) if xs else None, "p95": pct(xs, 95),
            "max": max(xs) if xs else None}


class Check(NamedTuple):
    """One "shop X checked: ..." log line; `at` is its time of day in seconds (milliseconds included)."""

    at: float
    shop: str
    state: str
    mode: str
    seconds: float


def human(line: str) -> str:
    """A JSON log line as "HH:MM:SS.mmm LEVEL    message" (a line that is not JSON as it is)."""
    try:
        rec = json.loads(line)
        return f"{rec['time'][11:23]} {rec['level']:<7} {rec['message']}"
    except (ValueError, KeyError, TypeError):
        return line


def log_lines(path: Path, start: int = 0, end: int | None = None) -> list[str]:
    raw = path.read_bytes()[start:end].decode("utf-8", "replace") if path.exists() else ""
    return [human(ln) for ln in raw.splitlines()]


def log_checks(agent: Agent, start: int, end: int | None = None) -> list[Check]:
    return [Check(int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]) + int(m[4]) / 1000, m[5], m[6], m[7], float(m[8]))
            for ln in log_lines(agent.log_path, start, end) if (m := CHECKED.match(ln))]


def gaps(checks: list[Check], *, starts: bool = False, skip: int = 0) -> list[float]:
    """Seconds between consecutive checks of the same shop, from the end of one to the end of the next, or with
    `starts` from the start of one to the start of the next (log time minus the check's own seconds: what an
    interval schedule keeps), leaving out each shop's first `skip` gaps. Log times have milliseconds, the
    check's seconds two decimals."""
    last: dict[str, float] = {}
    seen: Counter[str] = Counter()
    out: list[float] = []
    for c in checks:
        at = c.at - c.seconds if starts else c.at
        if c.shop in last:
            seen[c.shop] += 1
            if seen[c.shop] > skip:
                out.append(round((at - last[c.shop]) % 86400, 1))
        last[c.shop] = at
    return out


def anomalies(agent: Agent, shops: list[str]) -> dict[str, Any]:
    """WARNING / ERROR lines of the whole run (plus console lines the log file lacks) grouped by shape, and
    what the stop did: jobs in flight at SIGTERM, checks that still ran, jobs cancelled."""
    lines = log_lines(agent.log_path)
    text = "\n".join(lines)
    logged = set(lines)
    extra = [ln for ln in log_lines(agent.out_path) if ln.strip() and ln not in logged]
    groups: Counter[str] = Counter()
    examples: dict[str, str] = {}
    names = sorted(shops, key=len, reverse=True)
    for line in [ln for ln in lines if NOTABLE.match(ln)] + [f"(console only) {ln}" for ln in extra]:
        shape = re.sub(r'"[^"]*"', '"…"', line[13:] if NOTABLE.match(line) else line)
        for name in names:
            shape = shape.replace(name, "<shop>")
        shape = re.sub(r"\d+(\.\d+)?", "#", shape)
        groups[shape] += 1
        examples.setdefault(shape, line)
    term = next((i for i, ln in enumerate(lines) if "SIGTERM: stopping" in ln), len(lines))
    inflight = re.search(r"waiting up to \d+ s for (\d+) check", text)
    cancelled = re.search(r"(\d+) job\(s\) did not finish in time", text)
    return {"groups": [{"count": n, "shape": s, "example": examples[s]} for s, n in groups.most_common()],
            "stop": {"inflight": int(inflight[1]) if inflight else 0,
                     "cancelled": int(cancelled[1]) if cancelled else 0,
                     "checks_after_sigterm": sum(1 for ln in lines[term:] if " checked: " in ln),
                     "last_line_stopped": bool(lines) and lines[-1].endswith("stopped")}}


def probe_item(k: int, sn: str) -> dict[str, Any]:
    """A new after-sales request whose automatic refund is PROBE_DEADLINE away."""
    [item] = generate_items(1000 + k, expiring=1, start_id=23_000_000_000_000 + k * 1000)
    item.update(orderSn=sn, state="wait_seller", deadline_in=PROBE_DEADLINE,
                created_ago=AUTO_REFUND_WINDOW - PROBE_DEADLINE - 300)
    return item


def run_probes(ctl: SandboxControl, wecom: FakeWeCom, mall_id: int, count: int, timeout: float,
               out: list[dict[str, Any]], interval: int) -> None:
    """Add `count` probe items one after another, each at a random phase of the schedule; time each alert."""
    rng = random.Random(time.time_ns())
    time.sleep(rng.uniform(5, 20))
    for k in range(count):
        sn = f"261121-{rng.randrange(10**14, 10**15)}"
        t_add = time.time()
        ctl.add_items(mall_id, [probe_item(rng.randrange(10**6), sn)])
        end = time.monotonic() + timeout
        got = None
        while got is None and time.monotonic() < end:
            got = next((m for m in wecom.messages(PROBE_KEY) if sn in m.content), None)
            time.sleep(0.1)
        out.append({"order_sn": sn, "latency_s": None if got is None else round(got.time - t_add, 2),
                    "timeout_s": timeout})
        if k + 1 < count:
            time.sleep(rng.uniform(0, interval))


RISK = {"strict": False}
RISK_ROUTES = ("/mercury/mms/afterSales/queryList", "/mercury/mms/afterSales/queryCount",
               "/mercury/merchant/afterSales/queryWaitHandleCount")


def bench(n: int, url: str, ctl: SandboxControl, wecom: FakeWeCom, tmp: Path, steady: float, setup: Setup,
          plan: dict[str, Any] | None, viewers: int = 0) -> dict[str, Any]:
    """One agent run with `n` shops: primed (plan given) with a steady phase, or cold (no session) start-up only."""
    cold = plan is None
    tag = f"{n}-cold" if cold else f"{n}-v{viewers}"
    scenario = generate_scenario(42, n, pending=20, expiring=0, evidence=2, closed=2)
    ctl.load(scenario)
    if RISK["strict"]:  # every business read must carry a fresh, single-use token bound to the fingerprint and account
        ctl.risk(levels={r: "account" for r in RISK_ROUTES}, fresh_seconds=30, live_headers=True)
    shops = cast(list[dict[str, Any]], scenario["shops"])
    names = [s["name"] for s in shops]
    data_dir, port = tmp / f"data-{tag}", free_port()
    config = write_config(tmp / f"config-{tag}.toml", url, shops, data_dir, port, wecom, setup)
    if not cold:
        prime_sessions(url, load_config(config), plan)
    wecom.clear()
    ctl.reset_stats()  # the busiest second is the agent's alone
    agent = Agent(config, port, data_dir, tmp / f"console-{tag}.txt")
    res: dict[str, Any] = {"shops": n, "cold": cold, "setup": setup._asdict(), "data_dir": str(data_dir),
                           "viewers": viewers}
    pages: Viewers | None = None
    try:
        res["healthz_s"] = round(agent.wait(lambda: agent.get("/healthz") is not None, "/healthz", 60, 0.05), 2)
        pages = Viewers(f"http://127.0.0.1:{port}", viewers) if viewers and not cold else None

        polled = [time.monotonic()]

        def all_checked() -> bool:
            # the log, not /metrics: rendering 1,000 shops' metrics twice a second would load the agent we time
            # (its endpoint thread holds the GIL); /metrics every 10 s still counts a check that logged no line
            if {c.shop for c in log_checks(agent, 0)} >= set(names):
                return True
            if time.monotonic() - polled[0] < 10:
                return False
            polled[0] = time.monotonic()
            done = agent.metrics().get("pdd_agent_checks_total", {})
            return all(done.get(name, 0) >= 1 for name in names)

        res["all_checked_s"] = round(agent.wait(all_checked, "every shop's first check", 300 + 15 * n,
                                                0.1 if n <= 5 else 0.5), 2)
        res["first_round_s"] = round(res["all_checked_s"] - res["healthz_s"], 1)  # the checks start at once
        first = log_checks(agent, 0)
        m = agent.metrics()
        failed = m.get("pdd_agent_check_failures_total", {})
        res["first_round"] = {"failures": int(sum(failed.values())), "modes": dict(Counter(c.mode for c in first)),
                              "states": dict(Counter(c.state for c in first)),
                              "check_s": summary([c.seconds for c in first]),
                              # the host's budget turns so far and the non-urgent reads left for later checks
                              "requests": int(m.get("pdd_agent_backend_requests_total", {}).get("", 0)),
                              "deferred": int(m.get("pdd_agent_reads_deferred_total", {}).get("", 0)),
                              "loop_lag_max_s": m.get("pdd_agent_event_loop_lag_seconds", {}).get("run")}
        if not cold:
            res.update(steady_phase(agent, ctl, wecom, int(shops[0]["mall_id"]), n, steady, setup.interval))
    except RuntimeError as exc:  # reported with what was measured so far
        res["error"] = str(exc)
        print(f"  {tag}: {exc}", flush=True)
    if pages is not None:
        pages.close()
        res["page_fetches"] = pages.fetches
    try:
        if agent.proc.poll() is None:
            took, res["exit_code"] = agent.stop()
            res["stop_s"] = round(took, 2)
    finally:
        agent.close()
    res["peak_requests_per_second"] = ctl.stats()["peak_per_second"]
    res["risk_refusals"] = {k: v for k, v in ctl.stats()["counts"].items() if k.startswith("risk:")}
    res["pss_peak_run_mib"] = round(max((v for _, v in agent.pss), default=0.0), 1)
    res["pss_peak_by_kind_mib"] = {k: round(v, 1) for k, v in agent.pss_kinds.items()}
    res["anomalies"] = anomalies(agent, names)
    res["wecom_messages"] = {k: len(wecom.messages(key)) for k, key in (("ops", OPS_KEY), ("probe", PROBE_KEY))}
    if cold:
        plan_file = shop_dir(data_dir, names[0]) / "plan.json"
        res["plan"] = json.loads(plan_file.read_text(encoding="utf-8"))["bodies"] if plan_file.exists() else None
    return res


def steady_phase(agent: Agent, ctl: SandboxControl, wecom: FakeWeCom, mall_id: int, n: int,
                 steady: float, interval: int) -> dict[str, Any]:
    probes: list[dict[str, Any]] = []
    round_s = time.monotonic() - agent.started  # about one round of checks (the first ones just completed)
    timeout = max(2.0 * (interval + JITTER + DISPATCH), 1.5 * round_s)
    prober = threading.Thread(target=run_probes, args=(ctl, wecom, mall_id, 3 if n == 1 else 1, timeout, probes,
                                                       interval), daemon=True)
    m0, c0, off0, w0 = agent.metrics(), cpu_seconds(agent.proc.pid), agent.log_size(), time.monotonic()
    prober.start()
    time.sleep(max(0.0, w0 + steady - time.monotonic()))
    c1, w1 = cpu_seconds(agent.proc.pid), time.monotonic()
    m1, off1, pss_final = agent.metrics(), agent.log_size(), pss_mib(agent.proc.pid)
    prober.join()
    if agent.proc.poll() is not None:
        raise RuntimeError(f"the agent exited ({agent.proc.returncode}) during the steady phase")

    def delta(name: str) -> dict[str, float]:
        a, b = m0.get(name, {}), m1.get(name, {})
        return {k: b[k] - a.get(k, 0.0) for k in b}

    counts, sums = delta("pdd_agent_check_duration_seconds_count"), delta("pdd_agent_check_duration_seconds_sum")
    means = [sums[k] / c for k, c in counts.items() if c > 0]
    window = log_checks(agent, off0, off1)
    logged = log_checks(agent, 0, off1)
    schedule, ends = gaps(logged, starts=True), gaps(logged)
    return {
        "steady_s": round(w1 - w0, 1),
        "cpu_s": round(c1 - c0, 2),
        "cpu_pct_core": round(100 * (c1 - c0) / (w1 - w0), 2),
        "pss_peak_mib": round(max((v for t, v in agent.pss if w0 <= t <= w1), default=pss_final), 1),
        "pss_final_mib": round(pss_final, 1),
        "checks": int(sum(delta("pdd_agent_checks_total").values())),
        "failures": int(sum(delta("pdd_agent_check_failures_total").values())),
        "failures_total": int(sum(m1.get("pdd_agent_check_failures_total", {}).values())),
        "shops_checked_in_window": sum(1 for c in counts.values() if c > 0),
        "check_s_log": summary([c.seconds for c in window]),
        "check_modes": dict(Counter(c.mode for c in window)),
        "gap_between_checks_s": summary(schedule),  # start to start
        "gap_between_ends_s": summary(ends),
        # after each shop's first gap (the start-up round's checks come back up to half an interval early)
        "gap_later_rounds_s": summary(gaps(logged, starts=True, skip=1)),
        "check_s_metric": summary(means),
        "outbox": m1.get("pdd_agent_outbox_rows", {}),
        "requests": int(sum(delta("pdd_agent_backend_requests_total").values())),
        "deferred": int(sum(delta("pdd_agent_reads_deferred_total").values())),
        "loop_lag_max_s": m1.get("pdd_agent_event_loop_lag_seconds", {}).get("run"),
        # the agent's own count: the most budget turns any rolling second handed out (the sandbox's is below)
        "busiest_second_agent": m1.get("pdd_agent_requests_busiest_second", {}).get(""),
        # signed reads (--risk strict): tokens the signer pages minted a second, and how many pages
        "signer_tokens_per_s": round(sum(delta("pdd_agent_signer_tokens").values()) / (w1 - w0), 2),
        "signer_pages": m1.get("pdd_agent_signer_pages", {}).get(""),
        "alert_latency": probes,
        "alert_bound_s": interval + JITTER + DISPATCH,
    }


def fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def row(r: dict[str, Any]) -> str:
    lat = [p["latency_s"] for p in r.get("alert_latency", [])]
    lat_s = ",".join(">" + fmt(p["timeout_s"], ".0f") if p["latency_s"] is None else fmt(p["latency_s"], ".1f")
                     for p in r.get("alert_latency", [])) if lat else "-"
    cl, cm, gap = r.get("check_s_log", {}), r.get("check_s_metric", {}), r.get("gap_between_checks_s", {})
    pss = f"{fmt(r.get('pss_peak_mib'), '.0f')}/{fmt(r.get('pss_final_mib'), '.0f')}"
    chk = f"{fmt(cl.get('median'))}/{fmt(cl.get('p95'))}"
    wait = f"{fmt(cm.get('median'), '.1f')}/{fmt(cm.get('p95'), '.1f')}"
    gaps_s = f"{fmt(gap.get('median'), '.0f')}/{fmt(gap.get('max'), '.0f')}"
    return (f"{str(r['shops']) + (' cold' if r['cold'] else ''):>7} {r['setup']['interval']:>5} "
            f"{fmt(r.get('healthz_s')):>7} {fmt(r.get('first_round_s'), '.1f'):>7} "
            f"{r.get('peak_requests_per_second', '-')!s:>5} {fmt(r.get('cpu_pct_core'), '.1f'):>6} {pss:>9} "
            f"{r.get('checks', '-'):>6} {r.get('failures', '-'):>5} {gaps_s:>7} "
            f"{chk:<13} {wait:<13} {lat_s:>14} "
            f"{fmt(r.get('stop_s'), '.1f'):>6} {r.get('exit_code', '-')!s:>4}")


HEADER = (f"{'shops':>7} {'every':>5} {'healthz':>7} {'round':>7} {'req/s':>5} {'CPU%':>6} {'PSS MiB':>9} "
          f"{'checks':>6} {'fails':>5} "
          f"{'gap s':>7} {'check md/p95':<13} {'metric md/p95':<13} {'alert lat. s':>14} {'stop s':>6} {'exit':>4}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shops", default="1,50", help="comma-separated shop counts (default 1,50)")
    ap.add_argument("--steady-seconds", type=float, default=120.0)
    ap.add_argument("--budget", type=float, default=50.0, help="[agent] max_requests_per_second (default 50)")
    ap.add_argument("--checks", type=int, default=100, help="[browser] max_concurrent_checks (default 100)")
    ap.add_argument("--pages", type=int, default=2, help="[browser] max_pages (default 2)")
    ap.add_argument("--interval", type=int, help="check interval in s for every run (default 60, 600 over 200 shops)")
    ap.add_argument("--json", metavar="PATH", help="also write every number here")
    ap.add_argument("--risk", choices=("none", "strict"), default="none",
                    help="the sandbox's Anti-Content policy: strict = fresh, single use, bound to the fingerprint and "
                    "the account, on every read (the agent signs with its signer pages)")
    ap.add_argument("--workdir", metavar="DIR", help="keep configs, data and logs here (default: a temporary one)")
    ap.add_argument("--viewers", default="0", help="comma-separated counts of open team pages per shop count, each "
                    "run once (e.g. 0,10: the same shops without and with ten pages)")
    args = ap.parse_args()
    counts = [int(x) for x in args.shops.split(",") if x]
    RISK["strict"] = args.risk == "strict"
    proc, url = start_sandbox()
    wecom = FakeWeCom(keys={OPS_KEY, PROBE_KEY}).start()
    ctl = SandboxControl(url)
    results: list[dict[str, Any]] = []
    print(f"schedule {SCHEDULE}, pacing 1.0 s, budget {args.budget:g} req/s, max_concurrent_checks {args.checks}, "
          f"max_pages {args.pages}, steady ≥ {args.steady_seconds:.0f} s; sandbox {url}", flush=True)

    def setup(n: int) -> Setup:
        return Setup(args.interval or (60 if n <= 200 else 600), args.budget, args.checks, args.pages)
    print(HEADER, flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="service-bench-") as d:
            tmp = Path(args.workdir or d)
            tmp.mkdir(parents=True, exist_ok=True)
            cold = bench(1, url, ctl, wecom, tmp, args.steady_seconds, setup(1), None)
            plan = cold.pop("plan")
            results.append(cold)
            print(row(cold), flush=True)
            if plan is None:
                raise SystemExit("the cold start learned no request plan: cannot prime the routine checks")
            for n in counts:
                # the steady phase sees each shop checked twice more: the start-up round's checks come back
                # spread over the interval (up to half of it early), the next ones one interval later
                steady = max(args.steady_seconds, 2 * (setup(n).interval + JITTER) + 60.0)
                for v in (int(x) for x in args.viewers.split(",") if x):
                    r = bench(n, url, ctl, wecom, tmp, steady, setup(n), plan, viewers=v)
                    results.append(r)
                    print(row(r) + (f"  ({v} pages open, {r.get('page_fetches', 0)} list refetches)" if v else ""),
                          flush=True)
    finally:
        ctl.close()
        wecom.stop()
        proc.terminate()
        proc.communicate(timeout=10)
    print("columns: every = check interval s; healthz = s from spawn to the first /healthz answer; round = s from "
          "then to every shop's first check; req/s = the sandbox's busiest second (all backend requests); "
          "CPU% of one core, PSS peak/final, checks and failures over the steady phase; gap = median/max s from "
          "the start of a shop's check to the start of its next; check = s per check (log lines); "
          "metric = pdd_agent_check_duration_seconds sum/count per shop (the same work, from /metrics); "
          "alert lat. = s from adding the item to the WeCom message (bound = interval + jitter + dispatch)")
    for r in results:
        tag = f"{r['shops']}{' cold' if r['cold'] else ''}"
        st = r["anomalies"]["stop"]
        print(f"  [{tag}] stop: {st['inflight']} job(s) in flight at SIGTERM, {st['checks_after_sigterm']} check(s) "
              f"ran after it, {st['cancelled']} cancelled, last line 'stopped': {st['last_line_stopped']}")
        for g in r["anomalies"]["groups"][:6]:
            print(f"  [{tag}] {g['count']:>4}x {g['example'][:220]}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
