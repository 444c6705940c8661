"""The team page over HTTP (no browser): login and its slow-down, the session cookie's flags, CSRF on every POST,
a GET that changes nothing, the JSON API (409 on a stale version, read-only tokens), /api/v1/status, escaping."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from agent.config import Config, ConfigError, load_config
from agent.core.claims import item_key
from agent.outbox.store import Store
from agent.outbox.team_store import Team
from agent.service.health import ShopStatus, Snapshot
from agent.web.auth import Throttle, check_password, hash_password
from tests.test_dispatch import NOON, check, item
from tests.web_helpers import FakeClock, FakeService, served_app

PASSWORD = "correct horse 1"


def write(tmp_path: Path, extra: str = "", listen: str = "127.0.0.1:0") -> Config:
    text = f"""
[agent]
data_dir = "data"
[[shops]]
name = "店"
username = "店"
[alerts]
notify = ["ops"]
[notifiers.ops]
type = "wecom"
webhook_url = "http://127.0.0.1:9/x?key=k"
[web]
listen = "{listen}"
{extra}
[[team.members]]
name = "张三"
mobile = "13800001111"
password_hash = "{hash_password(PASSWORD)}"
[[team.members]]
name = "李四"
"""
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    return load_config(tmp_path / "config.toml")


class Page:
    def __init__(self, url: str, cfg: Config, store: Store, service: FakeService) -> None:
        self.client = httpx.Client(base_url=url, timeout=10, follow_redirects=False)
        self.cfg, self.store, self.service = cfg, store, service

    def csrf(self, path: str = "/") -> str:
        m = re.search(r'name="csrf" content="([^"]*)"', self.client.get(path).text)
        assert m, "no CSRF token on the page"
        return m.group(1)

    def login(self, name: str = "张三", password: str = PASSWORD) -> httpx.Response:
        form = self.client.get("/login").text
        token = re.search(r'name="_csrf" value="([^"]+)"', form)
        assert token
        return self.client.post("/login", data={"_csrf": token.group(1), "name": name, "password": password,
                                                "next": "/"})


@pytest.fixture
def page(tmp_path: Path, store_at: Path | str) -> Iterator[Page]:
    cfg = write(tmp_path)
    store = Store(store_at)
    snap = Snapshot(pid=1, version="t", started_at=time.time(), updated_at=time.time(), scheduler_running=True,
                    shops=[ShopStatus(name="店", state="ok", last_ok=time.time(), stale_after=time.time() + 600)])
    service = FakeService(lambda: snap, clock=FakeClock(NOON.timestamp() - time.time()))
    check(cfg, store, [item(1, timedelta(hours=5)), item(2, timedelta(hours=20))], NOON)
    with served_app(cfg, store, service) as (url, _):
        p = Page(url, cfg, store, service)
        try:
            yield p
        finally:
            p.client.close()
    store.close()


KEY = item_key("店", "aftersale", "1001")


def test_login_required_then_session_cookie_flags(page: Page) -> None:
    r = page.client.get("/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert page.client.get("/api/v1/items").status_code == 401
    r = page.login()
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "pdd_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert PASSWORD not in cookie
    assert "订单 261121-000000000000001" in page.client.get("/").text


def test_five_wrong_passwords_slow_the_login(page: Page) -> None:
    codes = [page.login(password="wrong").status_code for _ in range(5)]
    assert codes == [401] * 5
    r = page.login()  # even the right password waits now
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "秒后再试" in r.text


def test_throttle_grows_and_forgets() -> None:
    t = Throttle()
    for i in range(5):
        assert t.wait(["a"], 100.0 + i) == 0
        t.failed(["a"], 100.0 + i)
    assert t.wait(["a"], 104.5) > 0
    assert t.wait(["a"], 104.0 + 2.1) == 0  # 2 s after the fifth
    t.failed(["a"], 107.0)
    assert t.wait(["a"], 110.0) > 0  # 4 s after the sixth
    assert t.wait(["a"], 107.0 + 901) == 0


def test_post_without_csrf_is_refused_and_a_get_changes_nothing(page: Page) -> None:
    page.login()
    assert page.client.post(f"/items/{KEY}/claim", data={"version": "0"}).status_code == 403
    assert page.client.post(f"/api/v1/items/{KEY}/claim", json={}).status_code == 403
    assert page.client.get(f"/items/{KEY}/claim").status_code in (404, 405)
    assert page.client.get(f"/api/v1/items/{KEY}/claim").status_code in (404, 405)
    assert Team(page.store).claim_of("店", "aftersale", "1001").version == 0
    r = page.client.post(f"/items/{KEY}/claim", data={"_csrf": page.csrf(), "version": "0"})
    assert r.status_code == 303
    assert Team(page.store).claim_of("店", "aftersale", "1001").member == "张三"
    assert page.service.kicks == 1


def test_api_claim_conflict_note_escaped_and_reassign(page: Page) -> None:
    page.login()
    h = {"X-CSRF-Token": page.csrf()}
    r = page.client.post(f"/api/v1/items/{KEY}/claim", json={"version": 0}, headers=h)
    assert r.status_code == 200 and r.json()["claimed_by"] == "张三"
    r = page.client.post(f"/api/v1/items/{KEY}/claim", json={"version": 0}, headers=h)
    assert r.status_code == 409 and r.json()["item"]["claimed_by"] == "张三"
    r = page.client.post(f"/api/v1/items/{KEY}/note", json={"text": "<script>alert(1)</script>"}, headers=h)
    assert r.status_code == 200 and r.json()["notes"] == 1
    html = page.client.get(f"/items/{KEY}").text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert page.client.post(f"/api/v1/items/{KEY}/note", json={"text": "x" * 501}, headers=h).status_code == 400
    r = page.client.post(f"/api/v1/items/{KEY}/claim", json={"member": "李四"}, headers=h)
    assert r.json()["claimed_by"] == "李四"
    assert page.client.post(f"/api/v1/items/{KEY}/claim", json={"member": "王五"}, headers=h).status_code == 400
    mine = page.client.get("/api/v1/items", params={"claimed": "李四"}).json()
    assert [i["key"] for i in mine["items"]] == [KEY] and mine["total"] == 1
    timeline = page.client.get(f"/api/v1/items/{KEY}").json()["timeline"]
    assert [e["who"] for e in timeline if e["who"] in ("张三", "李四")] == ["张三", "张三", "张三"]


def test_audit_qr_and_redirects(page: Page) -> None:
    page.login()
    h = {"X-CSRF-Token": page.csrf()}
    page.client.post(f"/api/v1/items/{KEY}/claim", json={}, headers=h)
    page.client.post(f"/api/v1/items/{KEY}/release", json={}, headers=h)
    actions = page.client.get("/api/v1/audit").json()["actions"]
    assert [(a["actor"], a["action"]) for a in actions] == [("张三", "released"), ("张三", "claimed")]
    assert page.client.get("/shops/店/qr.png").status_code == 404
    page.service.qr_images["店"] = b"\x89PNG fake"
    assert "扫码登录" in page.client.get("/shops").text
    r = page.client.get("/shops/店/qr.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content == b"\x89PNG fake"
    for evil in ("//evil.example/", "/\\evil.example", "https://evil.example/"):
        r = page.client.post(f"/items/{KEY}/note", data={"_csrf": page.csrf(), "text": "x", "next": evil})
        assert r.status_code == 303 and r.headers["location"] == "/", evil


def test_read_only_token_and_status_503_then_200(page: Page) -> None:
    token = Team(page.store).new_token("kuma", time.time())
    h = {"Authorization": f"Bearer {token}"}
    assert page.client.get("/api/v1/status", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert page.client.get("/api/v1/status", headers=h).status_code == 200
    assert page.client.post(f"/api/v1/items/{KEY}/claim", json={}, headers=h).status_code == 403
    assert page.client.get("/", headers=h).status_code == 303  # the token opens the API only
    lost = Snapshot(pid=1, version="t", started_at=time.time(), updated_at=time.time(), scheduler_running=True,
                    shops=[ShopStatus(name="店", state="login_required", stale_after=time.time() + 600)])
    good = page.service.snapshot
    page.service.snapshot = lambda: lost
    r = page.client.get("/api/v1/status", headers=h)
    assert r.status_code == 503 and any("login_required" in x for x in r.json()["reasons"])
    page.service.snapshot = good
    assert page.client.get("/api/v1/status", headers=h).status_code == 200


def test_open_on_loopback_skips_the_login(tmp_path: Path, store_at: Path | str) -> None:
    cfg = write(tmp_path, "open_on_loopback = true")
    store = Store(store_at)
    snap = Snapshot(pid=1, version="t", started_at=0, updated_at=time.time())
    with served_app(cfg, store, FakeService(lambda: snap)) as (url, _):
        r = httpx.get(url + "/", timeout=10)
        assert r.status_code == 200 and "待办" in r.text and "本机" in r.text
        token = re.search(r'name="csrf" content="([^"]+)"', r.text)
        assert token
        check(cfg, store, [item(1, timedelta(hours=5))], NOON)
        r = httpx.post(url + f"/api/v1/items/{KEY}/claim", json={}, headers={"X-CSRF-Token": token.group(1)})
        assert r.status_code == 200 and r.json()["claimed_by"] == "本机"  # a claim that holds (本机 counts)
    store.close()


def test_config_refuses_a_lan_page_without_members(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[[shops]]\nname = "店"\nusername = "店"\n[web]\nlisten = "0.0.0.0:8700"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "config.toml")
    assert "web.listen" in str(exc.value) and "team passwd" in str(exc.value)


def test_passwords_and_the_toml_writer(tmp_path: Path) -> None:
    from agent.cli.team_cmd import set_hash
    h = hash_password("secret pw")
    assert check_password("secret pw", h) and not check_password("other", h) and not check_password("x", "junk")
    text = ('# top\n[[team.members]]\nname = "张三" # the boss\n\n'
            '[[team.members]]\nname = "李四"\npassword_hash = "old"\n')
    out = set_hash(set_hash(text, "李四", "new"), "张三", "h1")
    assert out.count("password_hash") == 2 and '"new"' in out and '"h1"' in out and "# the boss" in out
    with pytest.raises(ValueError):
        set_hash(text, "王五", "x")


def test_the_first_change_goes_out_at_once_and_a_burst_after_it_once_a_second() -> None:
    import asyncio

    from agent.web.hub import COALESCE, Hub
    from tests.conftest import run_async

    async def scenario() -> list[tuple[float, str]]:
        hub, got = Hub(), []
        q: asyncio.Queue[str | None] = asyncio.Queue()
        hub.queues.add(q)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async def take() -> tuple[float, str]:
            topic = await q.get()
            return loop.time() - t0, str(topic)

        hub.publish("items")
        got.append(await take())
        for _ in range(20):  # a round of checks
            hub.publish("items")
            hub.publish("shops")
            await asyncio.sleep(0.01)
        got += [await take() for _ in range(2)]
        assert q.empty() and hub.versions == {"items": 21, "shops": 20}
        return got

    (first, t1), *burst = run_async(scenario())
    assert first < 0.1 and t1 == "items"
    assert sorted(t for _, t in burst) == ["items", "shops"] and all(COALESCE - 0.05 <= at < COALESCE + 0.3
                                                                     for at, _ in burst)


def test_a_login_qr_link_needs_no_login_only_its_live_token(page: Page) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"qr" * 50
    now = page.service.clock.now()
    token = page.store.qr_link("店", png, now + 900)
    r = page.client.get(f"/qr/{token}.png")  # not logged in: the link in a DingTalk or Feishu message
    assert r.status_code == 200 and r.content == png and r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "no-store"
    guessed = token[:-1] + ("y" if token[-1] == "x" else "x")
    assert page.client.get(f"/qr/{guessed}.png").status_code == 404  # a guessed token
    page.service.clock.offset += 901
    gone = page.client.get(f"/qr/{token}.png")
    assert gone.status_code == 404 and "pdd-agent login --qr" in gone.text  # expired: what to do instead
    assert page.client.get("/qr/").status_code in (303, 404)  # nothing else is public under /qr/
    assert page.client.get("/").status_code == 303  # the rest still needs a login
