"""Three real `pdd-agent run` nodes, 60 sandbox shops, two fake WeCom robots, one real PostgreSQL: the sandbox's
own request log shows that no shop's checks overlap and that every shop is checked every interval through a `kill -9`
of the node that was sending (its message delivered but unanswered: sent again once, marked) and a SIGSTOP of another
node mid-check (its late result fenced); every expected alert arrives once, never more than 20 a minute per robot;
every shop's traffic leaves through its own proxy whichever node checks it; no shop logs in again."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from agent.browser.plan import guess_plan
from agent.cluster.schedule import Schedule
from agent.cluster.sessions import SharedSessions
from agent.config import locators
from agent.outbox.engine import PostgresEngine
from agent.sandbox.control import http_login
from agent.sandbox.generate import generate_scenario
from agent.sandbox.traffic import busy_overlaps, start_gaps
from agent.sandbox.wecom import FakeWeCom
from agent.service.nodes import DISPATCH_LOCK
from tests.browser.test_alerts_e2e import AFTERSALE, EVIDENCE, SN, stage
from tests.browser.test_cluster_process import cluster_cmd
from tests.browser.test_network import proxies
from tests.browser.test_service_process import Agent, agents, free_port, wait_until
from tests.conftest import Sandbox
from tests.forward_proxy import ForwardProxy
from tests.test_cluster import SESSION_KEY

pytestmark = pytest.mark.browser
__all__ = ["agents", "proxies"]  # the fixtures
SHOPS = 60
INTERVAL, STALL, TICK, REAP = 6.0, 4.0, 2.0, 5.0  # check_interval, stall_timeout, the tick's and reaper's periods
# a silent node's shop checked by another: the stall timeout, the reaper, a tick, then a free slot and the check's
# first request among the burst of shops taken back at once
TAKEOVER = STALL + REAP + TICK + 3.0
HOLD = 3.0  # seconds the sandbox holds the request of the check the test freezes (shorter than the read timeout)
PASSWORD = "sandbox-pass"  # generated accounts' password (the agent never needs it here: no login happens)


def node_configs(tmp: Path, url: str, shops: list[dict[str, Any]], wecom: FakeWeCom, db: str,
                 proxies: tuple[ForwardProxy, ForwardProxy]) -> list[tuple[Path, int]]:
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = ["[agent]", "pacing_seconds = 0", "max_requests_per_second = 40", "[browser]", "timeout_seconds = 8",
             "[schedule]", f'check_interval = "{INTERVAL:g}s"', 'jitter = "0"', 'dispatch_interval = "1s"',
             'keepalive_interval = "0"', 'digest_cron = ""', 'shutdown_grace = "15s"',
             "[alerts]", 'notify = ["ops"]', 'failover_after = "0"', 'retry_backoff = "1s"']
    for name, key in (("ops", "k1"), ("ops2", "k2")):
        lines += [f"[notifiers.{name}]", 'type = "wecom"', f"webhook_url = {q(wecom.webhook_url(key))}"]
    for i, shop in enumerate(shops):
        lines += ["[[shops]]", f"name = {q(shop['name'])}", f"base_url = {q(url)}",
                  f"username = {q(shop['accounts'][0]['username'])}", 'password_env = "PDD_TEST_PASSWORD"']
        if i % 2:
            lines.append('notify = ["ops2"]')
        if i % 4 < 2:  # half the shops leave through proxy A or B, whichever node checks them
            lines.append(f"proxy = {q(proxies[i % 4].url)}")
    out = []
    for n in range(3):
        port = free_port()
        text = "\n".join([f'[web]\nlisten = "127.0.0.1:{port}"', *lines,
                          f'[cluster]\ndatabase_url = {q(db)}\nnode_name = "n{n}"\nstall_timeout = "{STALL:g}s"',
                          f"session_keys = {q(SESSION_KEY)}"]).replace("[agent]", f"[agent]\ndata_dir = "
                                                                            f"{q(str(tmp / f'data{n}'))}")
        path = tmp / f"n{n}.toml"
        path.write_text(text + "\n", encoding="utf-8")
        out.append((path, port))
    return out


def step(what: str) -> None:
    """A timed line in the test's output (shown with a failure, beside the nodes' logs)."""
    print(f"{time.strftime('%H:%M:%S')} test: {what}", flush=True)


def held_check(ctl: Any, db: PostgresEngine, node: str, users: dict[str, str]) -> str | None:
    """Arm a hold (HOLD s) on a shop `node` checked last and is not checking now, wait for its next request to come
    in, and return the shop if that request is `node`'s check (still in flight, held); None when another node's
    check took the hold (the caller tries again): the node to freeze is then surely in the middle of a check."""
    schedule = Schedule(db)
    busy = schedule.held_by()
    shop = next((s for s, n in sorted(schedule.last_nodes().items()) if n == node and s not in busy), None)
    if shop is None:
        return None
    user = next(u for u, n in users.items() if n == shop)
    ctl.hold(user, HOLD)
    end = time.monotonic() + 3 * INTERVAL
    while ctl.holds_left(user) and time.monotonic() < end:
        time.sleep(0.05)
    if ctl.holds_left(user):
        ctl.hold(user, HOLD, count=0)  # disarm: no check of it came
        return None
    return shop if schedule.held_by().get(shop) == node else None


def prime(url: str, db: PostgresEngine, shops: list[dict[str, Any]]) -> None:
    """Each shop's saved session (a login over HTTP) and request plan in the shared store, as after a first check
    on some node: the nodes start warm and none of them should ever log in."""
    sessions = SharedSessions(db, SESSION_KEY, "test")
    sessions.create()
    plan = {"learned_at": "primed", "bodies": guess_plan(locators.load()["aftersale_list"])}
    host = httpx.URL(url).host
    for shop in shops:
        with httpx.Client(base_url=url) as c:
            assert http_login(c, shop["accounts"][0]["username"], PASSWORD)["success"]
            cookies = [{"name": k, "value": v, "domain": host, "path": "/", "expires": -1, "httpOnly": k == "PASS_ID",
                        "secure": False, "sameSite": "Lax"} for k, v in c.cookies.items()]
        sessions.save(shop["name"], {"cookies": cookies, "origins": []})
        sessions.save_plan(shop["name"], plan)


def expected(sandbox: Sandbox, shops: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Shop → the order numbers in an alerting stage now (from the sandbox, not the agent's rules)."""
    now = sandbox.control.clock()["now"]
    out: dict[str, set[str]] = {}
    for shop in shops:
        for i in sandbox.control.items(int(shop["mall_id"])):
            if i["state"] in ("wait_seller", "wait_seller_receive"):
                st = stage(AFTERSALE, i["deadline"] - now)
            elif i["proofStatus"] == "待商家举证":
                st = stage(EVIDENCE, i["proofDeadline"] - now)
            else:
                continue
            if st is not None:
                out.setdefault(shop["name"], set()).add(i["orderSn"])
    return out


def received(wecom: FakeWeCom, names: list[str]) -> tuple[Counter[tuple[str, str]], dict[str, list[float]]]:
    """(shop, order number) per message received on either robot, and each robot's arrival times."""
    got: Counter[tuple[str, str]] = Counter()
    times: dict[str, list[float]] = {}
    for key in ("k1", "k2"):
        for m in wecom.messages(key):
            times.setdefault(key, []).append(m.time)
            if m.msgtype != "markdown":
                continue
            shop = next((n for n in names if f"【{n}】" in m.content), None)
            got.update((str(shop), sn) for sn in dict.fromkeys(SN.findall(m.content)))
    return got, times


def busiest_minute(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u - t < 60.0) for i, t in enumerate(times)), default=0)


def dispatching_node(db: PostgresEngine) -> str | None:
    row = db.execute("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                     "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = ?", (DISPATCH_LOCK,)).fetchone()
    return None if row is None else str(row[0]).rsplit(" ", 1)[-1]


def test_sixty_shops_on_three_nodes_through_a_kill_and_a_freeze(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent], pg_cluster: Any,
    proxies: tuple[ForwardProxy, ForwardProxy],
) -> None:
    url = pg_cluster.database()
    ctl = sandbox.control
    scenario = generate_scenario(23, SHOPS, pending=1, expiring=1, evidence_expiring=1, closed=1)
    ctl.load(scenario)
    ctl.set_clock(freeze=True)
    shops = cast(list[dict[str, Any]], scenario["shops"])
    names = [str(s["name"]) for s in shops]
    users = {str(s["accounts"][0]["username"]): str(s["name"]) for s in shops}
    want = expected(sandbox, shops)
    assert len(want) == SHOPS  # every shop has something to alert
    db = PostgresEngine(url, "test")
    try:
        configs = node_configs(tmp_path, sandbox.url, shops, wecom, url, proxies)
        assert cluster_cmd(configs[0][0], "migrate").returncode == 0
        prime(sandbox.url, db, shops)
        ctl.reset_stats()  # from here on, the agent's requests only; no login at all is expected
        wecom.add_key("k2")
        wecom.fail("k1", ["late:8"])  # the first message on k1 is taken, its answer held back
        nodes = {f"n{i}": Agent(path, port, tmp_path, name=f"n{i}", env={"PDD_TEST_PASSWORD": PASSWORD})
                 for i, (path, port) in enumerate(configs)}
        agents.extend(nodes.values())
        first = nodes["n0"]

        # kill -9 of the node that is sending, inside its send-to-commit window
        wait_until(lambda: wecom.messages("k1"), "the first message on k1", first, timeout=90)
        sender = wait_until(lambda: dispatching_node(db), "the node holding the dispatch", first, timeout=5)
        victim = nodes.pop(sender)
        schedule = Schedule(db)
        killed_held = {s for s, n in schedule.held_by().items() if n == sender}
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        killed_at = time.monotonic()
        step(f"{sender} killed, holding {sorted(killed_held)}")
        held_sns = set(SN.findall(wecom.messages("k1")[0].content))
        # every shop the killed node checked last is checked by another before the next failure: a shop meets one
        # failure at a time (two in a row would add their takeovers)
        wait_until(lambda: sender not in schedule.last_nodes().values(), "the killed node's shops taken over",
                   nodes[next(iter(nodes))], timeout=INTERVAL + TAKEOVER + 10)

        # SIGSTOP of another node inside a check (the sandbox holds the shop's request), SIGCONT after the takeover
        (frozen_name, frozen), (_, first) = nodes.items()  # `first`: the node the waits watch from now on
        target = wait_until(lambda: held_check(ctl, db, frozen_name, users), f"a check by {frozen_name} held",
                            first, timeout=60)
        os.kill(frozen.proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        step(f"{frozen_name} frozen inside its check of {target}")
        time.sleep(0.3)  # a lease it sent just before it froze still lands
        frozen_held = {s for s, n in schedule.held_by().items() if n == frozen_name} | {target}
        # another node began a check of it (the last node is kept after a check, a lease only while it runs)
        wait_until(lambda: schedule.last_nodes().get(target) != frozen_name, f"{target} taken over", first,
                   timeout=TAKEOVER + 10)
        os.kill(frozen.proc.pid, signal.SIGCONT)
        step(f"{target} taken over by {schedule.last_nodes().get(target)}; {frozen_name} woken")
        # its check of the target ends without writing: abandoned at its next heartbeat, or refused at the commit
        # (whichever way the read went on: a request that timed out while it was frozen falls back to a page)
        wait_until(lambda: f"the check of {target!r}" in frozen.log() and "was taken over" in frozen.log(),
                   "the frozen node's late check abandoned or refused", frozen, timeout=90)
        resumed_at = time.monotonic()
        step(f"{frozen_name}'s check of {target} ended unwritten")

        def all_delivered() -> bool:
            got, _ = received(wecom, names)
            return all((shop, sn) in got for shop, sns in want.items() for sn in sns)

        wait_until(all_delivered, "every expected alert", first, timeout=240)
        time.sleep(2 * INTERVAL)  # more rounds: nothing is sent again

        def outbox_empty() -> bool:
            return not db.execute("SELECT count(*) FROM outbox WHERE status <> 'sent'").fetchone()[0]

        wait_until(outbox_empty, "the outbox sent", first, timeout=90)  # a robot's minute may hold the last ones
        got, times = received(wecom, names)
        # what the store says went out: one message per (shop, channel, sent_at), a repeat where it is marked
        messages: dict[tuple[str, str, float], set[str]] = defaultdict(set)
        repeated = set()
        for shop, channel, payload, sent_at, again, status in db.execute(
                "SELECT shop, channel, payload, sent_at, maybe_repeated, status FROM outbox").fetchall():
            assert status == "sent", (shop, status)
            messages[(shop, channel, sent_at)].update(SN.findall(payload))
            if again:
                repeated.add((shop, channel, sent_at))
        recorded: Counter[tuple[str, str]] = Counter()
        for key, sns in messages.items():
            recorded.update({(key[0], sn): 1 + (key in repeated) for sn in sns})
        assert got == recorded  # every alert queued arrived; once, but the one marked as possibly repeated
        assert len(repeated) == 1 and set().union(*(messages[k] for k in repeated)) == held_sns, (repeated, held_sns)
        assert {(s, sn) for s, sns in want.items() for sn in sns} <= set(got)  # among them every stage the sandbox set
        assert all(busiest_minute(ts) <= 20 for ts in times.values()), {k: busiest_minute(v) for k, v in times.items()}
        assert max(len(ts) for ts in times.values()) > 20  # a robot's limit was actually in play
        rejected = [r for k in ("k1", "k2") for r in wecom.rejections(k) if r == 45009]
        assert not rejected  # the nodes kept the limit together: the robot never had to refuse

        # the sandbox's request log: no shop's checks overlapped but the fenced one; every shop checked each interval
        entries, _ = ctl.requests()
        api = {v for v in locators.load()["site"]["api"].values() if isinstance(v, str) and v.startswith("/")}
        entries = [e for e in entries if e[1] in api]
        overlaps = busy_overlaps(entries)
        # (a frozen node's checks go on after it wakes, until their commits are refused: requests, never results)
        stray = [(users[u], round(t - stopped_at, 2)) for u, t in overlaps
                 if users[u] not in frozen_held or not stopped_at - 1 <= t <= resumed_at + INTERVAL]
        assert not stray, (stray, frozen_held, round(resumed_at - stopped_at, 2))
        gaps = start_gaps(entries, locators.load()["site"]["api"]["query_count"])
        assert set(gaps) == set(users)  # every shop was checked more than once
        worst = {users[u]: max(g) for u, g in gaps.items()}
        slack = TAKEOVER  # a dead or frozen node's shops (in flight, or waiting in its queue) are taken over
        assert max(worst.values()) <= INTERVAL + slack, sorted(worst.items(), key=lambda kv: -kv[1])[:5]
        count_route = locators.load()["site"]["api"]["query_count"]

        def taken_over(shop: str, since: float) -> float:
            user = next(u for u, n in users.items() if n == shop)
            after = [e[2] for e in entries if e[0] == user and e[1] == count_route and e[2] > since]
            return after[0] - since if after else float("inf")

        # a dead or frozen node's shop checked by another within TAKEOVER
        took = {s: taken_over(s, killed_at) for s in killed_held} | {target: taken_over(target, stopped_at)}
        assert max(took.values()) <= TAKEOVER, took
        stats = ctl.stats()
        assert stats["counts"].get("logins", 0) == 0  # every shop read with its saved session
        moved = {n for n in names if sum(f"shop {n} checked" in a.log() for a in (*nodes.values(), victim)) > 1}
        exits = ("127.0.0.2 via", "127.0.0.3 via", "127.0.0.1 via -", "127.0.0.1 via -")
        for i, shop in enumerate(shops):  # each shop's every request left through its own proxy (or none)
            seen = stats["clients"][shop["accounts"][0]["username"]]
            assert seen and all(k.startswith(exits[i % 4]) for k in seen), (shop["name"], seen)
        assert any(i % 4 < 2 and s["name"] in moved for i, s in enumerate(shops))  # a proxied shop changed nodes
        print(f"requests {len(entries)}, worst gap {max(worst.values()):.1f}s, taken over after "
              f"{max(took.values()):.1f}s ({len(took)} shop(s))")

        # the killed node's jobs ended failed; SIGTERM leaves no check running
        failed = db.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'check_shop' AND "
                            "status = 'failed'").fetchone()[0]
        assert failed >= 1  # the frozen node's check of the target (and any the killed node had): never retried
        for agent in nodes.values():
            agent.proc.send_signal(signal.SIGTERM)
        for agent in nodes.values():
            assert agent.stop(0) == 0, agent.log()[-3000:]
        doing = db.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'").fetchone()[0]
        assert doing == 0
        assert "had been ended by another node while this one was silent" in frozen.log()
        errors = [line for a in nodes.values() for line in a.log().splitlines() if " ERROR " in line]
        assert not errors, errors[:5]  # a kill, a freeze and a takeover are routine: nothing to alarm anyone
    finally:
        db.close()
