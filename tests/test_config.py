"""The admin's TOML config: loading, errors naming key and line, ${ENV} expansion, masking, `config check`."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import textwrap
import tomllib
from pathlib import Path

import pytest

from agent.cli import main as cli
from agent.config import (
    AgentConfig,
    AlertsConfig,
    BrowserConfig,
    Config,
    ConfigError,
    NotifierConfig,
    ShopConfig,
    WatchConfig,
    load_config,
    masked,
)
from agent.config.durations import parse_duration
from agent.config.loader import _mask
from agent.config.schema import NOTIFIER_TYPES, MemberConfig, TeamConfig, WebConfig
from agent.config.toml_lines import line_map as _line_map
from agent.outbox.enqueue import rules_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"
SECRET = "hunter2-secret"

# A valid file; the error cases below are this file with one edit, so their line numbers are easy to check.
GOOD = """\
# 测试配置 / test config
[agent]
timezone = "Asia/Shanghai"
data_dir = "./data"

[browser]
headless = true
max_concurrent_shops = 2

[[shops]]
name = "一号店"
username = "一号店:客服01"
password_env = "PDD_PASSWORD_SHOP1"

[[shops]]
name = "二号店"
username = "二号店"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, text))
    return str(exc.value)


@pytest.fixture(autouse=True)
def _no_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PDD_PASSWORD_SHOP1", "PDD_PASSWORD_SHOP2", "PDD_TEST_URL", "PDD_TEST_UNSET"):
        monkeypatch.delenv(name, raising=False)


def test_example_loads_with_defaults_and_paths_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    copy = tmp_path / "etc" / "config.toml"
    shutil.copy(EXAMPLE, copy)
    monkeypatch.chdir(ROOT)  # the working folder must not matter
    config = load_config(copy)
    assert config.path == copy
    assert config.agent == AgentConfig(data_dir=tmp_path / "etc" / "data")
    assert config.agent.zone.key == "Asia/Shanghai"
    assert config.browser == BrowserConfig(max_pages=2) and config.browser.pages == BrowserConfig().pages == 2
    assert [(s.name, s.username, s.password_env, s.base_url) for s in config.shops] == [
        ("示例旗舰店", "示例旗舰店:客服01", "PDD_PASSWORD_SHOP1", "https://mms.pinduoduo.com"),
        ("示例专营店", "示例专营店", "PDD_PASSWORD_SHOP2", "https://mms.pinduoduo.com"),
    ]
    assert [s.password() for s in config.shops] == [None, None]
    assert config.shop("示例专营店") is config.shops[1]
    assert load_config(EXAMPLE).agent.data_dir == ROOT / "data"


def test_example_shows_every_schema_key() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    deprecated = {"max_concurrent_shops", "health_port", "health_host"}  # still read, no longer shown
    for table, cls in (("agent", AgentConfig), ("browser", BrowserConfig)):
        assert set(data[table]) == {f.name for f in dataclasses.fields(cls)} - deprecated, table
    assert set(data["shops"][0]) == {f.name for f in dataclasses.fields(ShopConfig)}
    assert set(data) == {f.name for f in dataclasses.fields(Config) if not f.metadata.get("internal")}
    assert set(data["alerts"]) == {f.name for f in dataclasses.fields(AlertsConfig)}
    assert set(data["watch"]) == {f.name for f in dataclasses.fields(WatchConfig)}
    assert set(data["web"]) == {f.name for f in dataclasses.fields(WebConfig)}
    assert set(data["team"]) - {"members"} == {f.name for f in dataclasses.fields(TeamConfig)} - {"members"}
    assert set(data["team"]["members"][0]) == {f.name for f in dataclasses.fields(MemberConfig)}
    names = {f.metadata.get("toml", f.name) for f in dataclasses.fields(NotifierConfig)}
    assert set().union(*data["notifiers"].values()) == names
    assert {t["type"] for t in data["notifiers"].values()} == set(NOTIFIER_TYPES)


@pytest.mark.parametrize(
    ("snippet", "expect"),
    [
        ('[alerts]\nnotify = ["nope"]\n', 'alerts.notify: unknown channel "nope"'),
        ('[alerts]\naftersale_before = ["24h", "soon"]\n', "alerts.aftersale_before: expected durations"),
        ('[alerts]\nquiet_hours = "23-7"\n', "alerts.quiet_hours: expected \"HH:MM-HH:MM\""),
        ('[notifiers.ops]\ntype = "wecom"\n', "notifiers.ops.webhook_url: missing (required for type wecom)"),
        ('[notifiers.m]\ntype = "email"\nhost = "h"\n', "notifiers.m.to: needs at least one address"),
        ('[notifiers.x]\ntype = "sms"\n', "notifiers.x.type: expected one of"),
        ('[notifiers.ops]\ntype = "wecom"\nwebhook = "u"\n', "notifiers.ops.webhook: unknown key"),
        ('[watch]\ncomplaints_notify = ["nope"]\n', 'watch.complaints_notify: unknown channel "nope"'),
        ('[watch]\ncomplaint = false\n', "watch.complaint: unknown key"),
        ('[watch]\ncooldown = "soon"\n', "watch.cooldown: expected a duration"),
    ],
    ids=["unknown-channel", "bad-duration", "bad-quiet", "wecom-no-url", "email-no-to", "bad-type", "typo",
         "watch-channel", "watch-typo", "watch-cooldown"],
)
def test_alert_and_notifier_tables(tmp_path: Path, snippet: str, expect: str) -> None:
    text = '[[shops]]\nname = "店"\nusername = "店"\n' + snippet
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, text))
    assert expect in str(exc.value)
    assert re.search(r"config\.toml:\d+: ", str(exc.value))


DT = 'type = "dingtalk"\nwebhook_url = "https://oapi.dingtalk.com/robot/send?access_token=t"\n'
FS = 'type = "feishu"\nwebhook_url = "https://open.feishu.cn/open-apis/bot/v2/hook/t"\n'
APP = 'type = "wecom_app"\ncorp_id = "ww1"\ncorp_secret = "s"\n'


@pytest.mark.parametrize(("snippet", "key", "expect"), [
    ("[notifiers.d]\n" + DT + 'secret = "abc"\n', "notifiers.d.secret", "a DingTalk secret starts with SEC"),
    ('[notifiers.d]\ntype = "dingtalk"\nwebhook_url = "http://oapi.dingtalk.com/robot/send?access_token=t"\n',
     "notifiers.d.webhook_url", "must use https://"),
    ('[notifiers.d]\ntype = "dingtalk"\nwebhook_url = "https://oapi.dingtalk.com/robot/send"\n',
     "notifiers.d.webhook_url", "has no ?access_token"),
    ('[notifiers.d]\ntype = "dingtalk"\nwebhook_url = "https://oapi.dingtalk.com:99999/robot/send?access_token=t"\n',
     "notifiers.d.webhook_url", "a port from 1 to 65535"),
    ("[notifiers.d]\n" + DT + 'mention_mobiles = ["138-0000"]\n', "notifiers.d.mention_mobiles", "phone numbers"),
    ("[notifiers.f]\n" + FS + 'mention_mobiles = ["13800000000"]\n', "notifiers.f.mention_mobiles",
     "a Feishu bot cannot @ by phone"),
    ("[notifiers.f]\n" + FS + 'mention_open_ids = ["zhangsan"]\n', "notifiers.f.mention_open_ids",
     "expected a Feishu open_id"),
    ('[notifiers.f]\ntype = "feishu"\nwebhook_url = "https://open.feishu.cn/x"\n', "notifiers.f.webhook_url",
     "hook/TOKEN"),
    ("[notifiers.a]\n" + APP + 'to_users = ["z"]\n', "notifiers.a.agent_id", "AgentId"),
    ("[notifiers.a]\n" + APP + "agent_id = 1000002\n", "notifiers.a.to_users", "missing"),
    ("[notifiers.a]\n" + APP + 'agent_id = 1\nto_users = ["a|b"]\n', "notifiers.a.to_users", "userid"),
    ('[notifiers.p]\ntype = "apprise"\n', "notifiers.p.urls", "at least one Apprise URL"),
    ('[notifiers.p]\ntype = "apprise"\nurls = ["dingtalk://SEC1@t/138"]\n', "notifiers.p.urls",
     'use type = "dingtalk"'),
    ('[notifiers.p]\ntype = "apprise"\nurls = ["wecom://t"]\n', "notifiers.p.urls", "PushPlus"),
    ('[[team.members]]\nname = "张三"\nfeishu_open_id = "13800000000"\n', "team.members[0].feishu_open_id",
     "expected a Feishu open_id"),
], ids=["ding-sec", "ding-http", "ding-token", "ding-port", "ding-mobile", "feishu-phone", "feishu-openid",
        "feishu-url", "app-agent", "app-users", "app-pipe", "apprise-empty", "apprise-dingtalk", "apprise-wecom",
        "member-openid"])
def test_each_channel_type_is_checked_by_key_and_line(tmp_path: Path, snippet: str, key: str, expect: str) -> None:
    text = '[[shops]]\nname = "店"\nusername = "店"\n' + snippet
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    [line] = [ln for ln in str(exc.value).splitlines() if f"{key}:" in ln]
    assert expect in line and re.search(r"config\.toml:\d+: ", line)
    number = int(re.search(r"config\.toml:(\d+): ", line).group(1))  # type: ignore[union-attr]
    named = key.rsplit(".", 1)[-1].split("[")[0]
    assert path.read_text(encoding="utf-8").splitlines()[number - 1].startswith((named, "[notifiers.", "[[team"))


def test_channel_secrets_are_masked_in_the_resolved_view(tmp_path: Path) -> None:
    text = ('[[shops]]\nname = "店"\nusername = "店"\n[notifiers.d]\n' + DT + 'secret = "SECtopsecret"\n'
            "[notifiers.a]\n" + APP.replace('"s"', '"corp-topsecret"') + 'agent_id = 1\nto_users = ["z"]\n'
            '[notifiers.p]\ntype = "apprise"\nurls = ["pushplus://token-topsecret"]\n')
    dumped = json.dumps(masked(load_config(_write(tmp_path, text))), ensure_ascii=False)
    assert "topsecret" not in dumped and "access_token=t" not in dumped


def test_watch_items_per_shop_and_their_channels(tmp_path: Path) -> None:
    text = ('[[shops]]\nname = "甲"\nusername = "甲"\nwatch_off = ["quality", "money"]\nnotify = ["a"]\n'
            '[[shops]]\nname = "乙"\nusername = "乙"\n[alerts]\nnotify = ["b"]\n'
            '[watch]\nwork_orders = false\ncomplaints_notify = ["boss"]\n'
            '[notifiers.a]\ntype = "wecom"\nwebhook_url = "k1"\n[notifiers.b]\ntype = "wecom"\nwebhook_url = "k2"\n'
            '[notifiers.boss]\ntype = "wecom"\nwebhook_url = "k3"\n')
    config = load_config(_write(tmp_path, text))
    a, b = config.shops
    assert config.watching(a) == {"complaints", "urged", "platform", "platform_refunds"}
    assert config.watching(b) == {"complaints", "urged", "quality", "platform", "platform_refunds", "money"}
    assert config.watch_channels(a, "complaints") == ("boss",) and config.watch_channels(a, "quality") == ("a",)
    assert config.watch_channels(b, "urged") == ("b",)
    msg = _error(tmp_path, SHOP + 'watch_off = ["complaint"]\n')
    assert "shops[0].watch_off" in msg and "未知的监控项" in msg


def test_notifier_tables_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK", "http://127.0.0.1:9/cgi-bin/webhook/send?key=k1")
    text = ('[[shops]]\nname = "店"\nusername = "店"\nnotify = ["mail"]\n[alerts]\nnotify = ["ops"]\n'
            '[notifiers.ops]\ntype = "wecom"\nwebhook_url = "${HOOK}"\n'
            '[notifiers.mail]\ntype = "email"\nhost = "h"\nsecurity = "starttls"\nusername = "u@x"\nto = ["b@x"]\n')
    config = load_config(_write(tmp_path, text))
    assert config.notifiers["ops"].webhook_url.endswith("key=k1")
    assert config.notifiers["mail"].smtp_port == 587 and config.notifiers["mail"].sender == ""
    assert config.channels_for(config.shops[0]) == ("mail",)
    assert "key=k1" not in json.dumps(masked(config))


def test_minimal_file_takes_the_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, '[[shops]]\nname = "店"\nusername = "店"\nbase_url = "http://127.0.0.1:9/"\n'))
    assert config.agent == AgentConfig(data_dir=tmp_path / "data")
    assert config.agent.selectors_dir is None and config.agent.pacing_seconds == 1.0
    assert config.browser == BrowserConfig(
        executable_path="", headless=True, timeout_seconds=30
    )
    assert (config.browser.pages, config.browser.max_concurrent_checks, config.agent.max_requests_per_second) == (
        2, 100, 10.0)
    assert config.shops == (ShopConfig(name="店", username="店", base_url="http://127.0.0.1:9"),)
    assert config.shops[0].password() is None


def test_types_are_converted_and_normalized(tmp_path: Path) -> None:
    text = GOOD.replace('data_dir = "./data"', 'data_dir = "/var/lib/pdd"\nselectors_dir = "sel"\npacing_seconds = 0\n'
                        'log_level = "debug"')
    config = load_config(_write(tmp_path, text))
    assert config.agent.data_dir == Path("/var/lib/pdd")
    assert config.agent.selectors_dir == tmp_path / "sel"
    assert config.agent.pacing_seconds == 0.0 and isinstance(config.agent.pacing_seconds, float)
    assert config.agent.log_level == "DEBUG"


BAD = [
    ("unknown-top-level-table", GOOD.replace("[agent]", "[agnet]"),
     'config.toml:2: agnet: unknown table (未知的配置项); did you mean "agent"?'),
    ("unknown-top-level-key", "log_level = 'INFO'\n" + GOOD, "config.toml:1: log_level: unknown key"),
    ("unknown-key-in-browser", GOOD.replace("headless = true", "headles = true"),
     'config.toml:7: browser.headles: unknown key (未知的配置项); did you mean "headless"?'),
    ("unknown-key-in-second-shop", GOOD + "max_concurrent_shops = 3\n",
     "config.toml:18: shops[1].max_concurrent_shops: unknown key"),
    ("password-in-the-file", GOOD.replace('\nname = "二号店"', '\nname = "二号店"\npassword = "x"'),
     'config.toml:17: shops[1].password: unknown key (未知的配置项); did you mean "password_env"?'),
    ("string-for-int", GOOD.replace("max_concurrent_shops = 2", 'max_concurrent_shops = "2"'),
     'config.toml:8: browser.max_concurrent_shops: expected an integer, got "2" (类型错误)'),
    ("int-for-bool", GOOD.replace("headless = true", "headless = 1"),
     "config.toml:7: browser.headless: expected a boolean (true/false), got 1 (类型错误)"),
    ("list-for-string", GOOD.replace('username = "二号店"', 'username = ["二号店"]'),
     'config.toml:17: shops[1].username: expected a string, got ["二号店"] (类型错误)'),
    ("float-for-int", GOOD.replace("max_concurrent_shops = 2", "max_concurrent_shops = 2.0"),
     "config.toml:8: browser.max_concurrent_shops: expected an integer, got 2.0"),
    ("table-for-table-array", GOOD.replace("[[shops]]", "[shops]", 1).split("\n[[shops]]")[0],
     "config.toml:10: shops: expected an array of tables ([[shops]])"),
    ("missing-username", GOOD.replace('username = "二号店"\n', ""),
     "config.toml:15: shops[1].username: missing (required) (缺少必填项)"),
    ("missing-name", GOOD.replace('name = "一号店"\n', ""), "config.toml:10: shops[0].name: missing (required)"),
    ("empty-username", GOOD.replace('username = "二号店"', 'username = "  "'),
     "config.toml:17: shops[1].username: must not be empty (不能为空)"),
    ("bad-url", GOOD.replace('\nname = "二号店"', '\nname = "二号店"\nbase_url = "mms.pinduoduo.com"'),
     'config.toml:17: shops[1].base_url: expected an http(s) URL with a host (and a port from 1 to 65535) such as '
     '"https://mms.pinduoduo.com", got "mms.pinduoduo.com" (网址无效)'),
    ("port-out-of-range", GOOD.replace('\nname = "二号店"', '\nname = "二号店"\nbase_url = "http://127.0.0.1:1270019999"'),
     "config.toml:17: shops[1].base_url: expected an http(s) URL with a host (and a port from 1 to 65535)"),
    ("port-zero", GOOD.replace('\nname = "二号店"', '\nname = "二号店"\nbase_url = "http://127.0.0.1:0"'),
     "config.toml:17: shops[1].base_url: expected an http(s) URL"),
    ("ftp-url", GOOD.replace('\nname = "二号店"', '\nname = "二号店"\nbase_url = "ftp://mms.pinduoduo.com"'),
     "config.toml:17: shops[1].base_url: expected an http(s) URL"),
    ("bad-timezone", GOOD.replace("Asia/Shanghai", "Asia/Beijing"),
     'config.toml:3: agent.timezone: unknown time zone "Asia/Beijing"'),
    ("bad-log-level", GOOD.replace('data_dir = "./data"', 'log_level = "LOUD"'),
     'config.toml:4: agent.log_level: expected one of DEBUG, INFO, WARNING, ERROR, got "LOUD"'),
    ("too-many-concurrent", GOOD.replace("max_concurrent_shops = 2", "max_concurrent_shops = 17"),
     "config.toml:8: browser.max_concurrent_shops: must be 1 to 16, got 17 (取值超出范围)"),
    ("zero-concurrent", GOOD.replace("max_concurrent_shops = 2", "max_concurrent_shops = 0"),
     "config.toml:8: browser.max_concurrent_shops: must be 1 to 16, got 0"),
    ("zero-timeout", GOOD.replace("headless = true", "timeout_seconds = 0"),
     "config.toml:7: browser.timeout_seconds: must be more than 0, got 0.0"),
    ("negative-pacing", GOOD.replace('data_dir = "./data"', "pacing_seconds = -1"),
     "config.toml:4: agent.pacing_seconds: must be 0 or more"),
    ("duplicate-shop-names", GOOD.replace("二号店", "一号店"),
     'config.toml:16: shops[1].name: duplicate "一号店", already used by shops[0] (名称重复)'),
    ("no-shops", GOOD.split("[[shops]]")[0], "config.toml: shops: at least 1 required; add a [[shops]] table"),
    ("empty-shops-array", "shops = []\n" + GOOD.split("[[shops]]")[0], "config.toml:1: shops: at least 1 required"),
    ("toml-syntax-error", GOOD.replace("headless = true", "headless = yes"),
     "config.toml:7: TOML syntax error: Invalid value (column 12) (TOML 语法错误)"),
    ("toml-duplicate-key", GOOD + 'name = "x"\n', "config.toml:18: TOML syntax error"),
    ("unset-env-var", GOOD.replace('\nname = "二号店"', '\nname = "二号店"\nbase_url = "${PDD_TEST_UNSET}/x"'),
     "config.toml:17: shops[1].base_url: environment variable PDD_TEST_UNSET is not set (环境变量未设置)"),
    # the line scanner: multi-line strings and arrays, quoted and dotted keys, inline tables, [shops.x] sub-tables
    ("after-multiline-string", GOOD.replace("[browser]", '[browser]\nnote = """\n[agent]\nx = 1\n"""\n"a b" = 1'),
     'config.toml:11: browser."a b": unknown key'),
    ("multiline-string-itself", GOOD.replace("[browser]", "[browser]\nnote = '''\n[agent]\n'''"),
     "config.toml:7: browser.note: unknown key"),
    ("after-multiline-array", GOOD.replace("[browser]", '[browser]\nargs = [\n  "a", # ]\n  "b",\n]\nheadles = 1'),
     "config.toml:11: browser.headles: unknown key"),
    ("dotted-key", GOOD.replace('data_dir = "./data"', 'data_dir = "./data"\nbrowser.extra = 1'),
     "config.toml:5: agent.browser: unknown table"),
    ("inline-table-shop", 'shops = [\n  {name = "a", username = "a"},\n  {name = "b", username = "b", bogus = 1},\n]\n'
     + GOOD.split("[[shops]]")[0], "config.toml:1: shops[1].bogus: unknown key"),
    ("sub-table-of-second-shop", GOOD + "[shops.limits]\nx = 1\n", "config.toml:18: shops[1].limits: unknown table"),
    ("crlf-and-comments", GOOD.replace("\n", "  # 注释 ]\r\n").replace("headless = true", "headless = 'yes'"),
     "config.toml:7: browser.headless: expected a boolean (true/false), got \"yes\""),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=i) for i, t, e in BAD])
def test_bad_config_names_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    message = _error(tmp_path, text)
    assert expected in message, message
    assert str(tmp_path / "config.toml") in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("headless = true", "headless = 1").replace('username = "二号店"\n', "") + "x = 1\n"
    problems = _error(tmp_path, text).splitlines()
    assert [p.split(": ")[1] for p in problems] == ["browser.headless", "shops[1].x", "shops[1].username"]


def test_password_env_holding_a_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    message = _error(tmp_path, GOOD.replace('"PDD_PASSWORD_SHOP1"', '"my pass!word"'))
    assert "config.toml:13: shops[0].password_env: expected the NAME of an environment variable" in message
    assert "my pass!word" not in message
    message = _error(tmp_path, GOOD.replace('"PDD_PASSWORD_SHOP1"', "20240101"))
    assert "shops[0].password_env: expected a string, got a value of type int" in message and "20240101" not in message


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found \(找不到配置文件\)"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path)
    (tmp_path / "gbk.toml").write_bytes('name = "店"'.encode("gbk"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "gbk.toml")


def test_env_references_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDD_TEST_URL", "http://127.0.0.1:8765/")
    text = GOOD.replace('\nname = "二号店"', '\nname = "二号店"\nbase_url = "${PDD_TEST_URL}"').replace(
        'username = "二号店"', 'username = "二号店:$${NOT_EXPANDED}"')
    shop = load_config(_write(tmp_path, text)).shops[1]
    assert shop.base_url == "http://127.0.0.1:8765"
    assert shop.username == "二号店:${NOT_EXPANDED}"


def test_password_is_read_from_the_environment_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = load_config(_write(tmp_path, GOOD)).shops[0]
    assert shop.password() is None
    monkeypatch.setenv("PDD_PASSWORD_SHOP1", SECRET)
    assert shop.password() == SECRET
    monkeypatch.setenv("PDD_PASSWORD_SHOP1", "")
    assert shop.password() is None


LINE_MAP_TEXT = "\n".join([
    "# 注释 [not] a = 1",  # 1
    "[agent]  # c",  # 2
    'timezone = "Asia/Shanghai"  # [x]',  # 3
    '"a.b" = 1',  # 4
    "x . y = '''it's'''",  # 5
    'm = """',  # 6: a multi-line string holding what looks like TOML
    '[shops] say "hi',  # 7: a lone quote inside
    'k = 1 \\"""',  # 8: an escaped quote does not end it
    '"end""""',  # 9: ends with a quote, then the closing """
    "z = 2",  # 10
    "[[shops]]",  # 11
    "name = 'a'",  # 12
    "tags = [",  # 13
    "  'x', # ]",  # 14
    "]",  # 15
    "after = {a = 1, b = [1, 2]}",  # 16
    "[[ shops ]]",  # 17
    "name = 'b'",  # 18
    "[shops.sub]",  # 19: a sub-table of the last [[shops]] element
    "k = 1",  # 20
    "",  # 21
    '["x y"]',  # 22
    "z = 1",  # 23
])


@pytest.mark.parametrize(
    ("path", "line"),
    [
        pytest.param(("agent",), 2, id="table"),
        pytest.param(("agent", "timezone"), 3, id="key"),
        pytest.param(("agent", "a.b"), 4, id="quoted-key"),
        pytest.param(("agent", "x"), 5, id="dotted-key-prefix"),
        pytest.param(("agent", "x", "y"), 5, id="dotted-key"),
        pytest.param(("agent", "m"), 6, id="multiline-string"),
        pytest.param(("agent", "z"), 10, id="after-multiline-string"),
        pytest.param(("shops",), 11, id="first-array-header"),
        pytest.param(("shops", 0), 11, id="array-element"),
        pytest.param(("shops", 0, "name"), 12, id="key-in-first-element"),
        pytest.param(("shops", 0, "tags"), 13, id="multiline-array"),
        pytest.param(("shops", 0, "after"), 16, id="after-multiline-array"),
        pytest.param(("shops", 1), 17, id="second-element"),
        pytest.param(("shops", 1, "name"), 18, id="key-in-second-element"),
        pytest.param(("shops", 1, "sub"), 19, id="sub-table-of-element"),
        pytest.param(("shops", 1, "sub", "k"), 20, id="key-in-sub-table"),
        pytest.param(("x y",), 22, id="quoted-table"),
        pytest.param(("x y", "z"), 23, id="key-in-quoted-table"),
    ],
)
def test_line_map(path: tuple[str | int, ...], line: int) -> None:
    data = tomllib.loads(LINE_MAP_TEXT)  # valid TOML, as the scanner assumes
    assert data["agent"]["m"].startswith("[shops]") and data["agent"]["m"].endswith('"end"')
    assert data["agent"]["x"]["y"] == "it's"
    assert len(data["shops"]) == 2
    lines = _line_map(LINE_MAP_TEXT)
    assert lines[path] == line
    assert ("agent", "k") not in lines and ("shops", "k") not in lines  # nothing read from inside the string


def test_masked_never_shows_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDD_PASSWORD_SHOP1", SECRET)
    config = load_config(EXAMPLE)
    assert config.shops[0].password() == SECRET
    view = masked(config)
    dumped = json.dumps(view, ensure_ascii=False)
    assert SECRET not in dumped
    assert view["shops"][0]["password_env"] == "PDD_PASSWORD_SHOP1 (set)"
    assert view["shops"][1]["password_env"] == "PDD_PASSWORD_SHOP2 (未设置 / not set)"
    assert view["agent"]["data_dir"] == str(ROOT / "data") and view["path"] == str(EXAMPLE)
    assert view["browser"]["max_pages"] == 2


def test_secret_named_keys_are_masked() -> None:
    """For the notifier tables to come: any key named like a secret shows as ***."""
    view = _mask({"wecom": {"webhook_url": "https://qyapi/x?key=abc", "token": "t0k", "api_key": "k3y",
                            "smtp_password": "pw", "secret": "", "mentions": ["13800000000"], "name": "运营群"}}, "")
    assert view == {"wecom": {"webhook_url": "***", "token": "***", "api_key": "***", "smtp_password": "***",
                              "secret": "", "mentions": ["13800000000"], "name": "运营群"}}


def test_cli_config_check_ok(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDD_PASSWORD_SHOP1", SECRET)
    monkeypatch.delenv("PDD_PASSWORD_SHOP2", raising=False)
    assert cli.main(["config", "check", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out and len(out.splitlines()) < 15  # a verdict, not the whole config
    lines = out.splitlines()
    assert "语法和取值正确" in lines[0] and "店铺 2 家（启用 2），通知渠道 6 个" in lines[1]
    assert lines[-1] == "配置有效 / config OK（6 条警告 / warnings）"
    warned = "\n".join(lines)
    line = EXAMPLE.read_text(encoding="utf-8").splitlines().index('password_env = "PDD_PASSWORD_SHOP2"') + 1
    assert f"config.example.toml:{line}: shops[1].password_env: environment variable PDD_PASSWORD_SHOP2 is not " \
        "set" in warned  # file, line, key
    assert "shops[1].username: 示例专营店 logs in with a main account (主账号)" in warned
    assert "notifiers.dingtalk-group: channel dingtalk-group is used by nothing" in warned
    assert "PDD_PASSWORD_SHOP1 is not set" not in warned
    assert cli.main(["config", "check", "--strict", "--config", str(EXAMPLE)]) == 1  # warnings fail with --strict


def test_cli_config_show_prints_the_effective_config_masked(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDD_PASSWORD_SHOP1", SECRET)
    assert cli.main(["config", "show", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert SECRET not in out and doc["shops"][0]["password_env"] == "PDD_PASSWORD_SHOP1 (set)"
    assert doc["agent"]["max_requests_per_second"] == 10.0  # defaults filled in


@pytest.mark.parametrize("channel", [[], ["--wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"],
                                     ["--dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=t"],
                                     ["--email", "ops@example.com"]], ids=["none", "wecom", "dingtalk", "email"])
def test_config_init_writes_a_file_that_config_check_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], channel: list[str],
) -> None:
    out = tmp_path / "config.toml"
    assert cli.main(["config", "init", "--shops", "3", *channel, "-o", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    config = load_config(out)
    assert [s.name for s in config.shops] == ["店铺1", "店铺2", "店铺3"]
    assert all(s.password_env and ":" in s.username for s in config.shops)  # sub-accounts, passwords by name
    assert len(config.notifiers) == (1 if channel else 0)
    assert cli.main(["config", "check", "--config", str(out)]) == 0
    assert "配置有效" in capsys.readouterr().out
    assert cli.main(["config", "init", "-o", str(out)]) == 2  # never over an existing file
    assert "--force" in capsys.readouterr().err
    assert cli.main(["config", "init", "--force", "-o", str(out)]) == 0


@pytest.mark.parametrize(("override", "expected"), [
    ('[api]\nquery_list = "/x"\nbad = \n', "site.toml:3: TOML syntax error: Invalid value (column 7)"),
    ('[api]\nquery_list = "/x"\nquery_lsit = "/y"\n', "site.toml:3: api.query_lsit: not a key of the shipped "
                                                        "site.toml"),
], ids=["syntax", "unknown-key"])
def test_a_selectors_override_that_does_not_parse_or_names_unknown_keys_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, expected: str,
) -> None:
    (tmp_path / "sel").mkdir()
    (tmp_path / "sel" / "site.toml").write_text(override, encoding="utf-8")
    path = _write(tmp_path, '[agent]\nselectors_dir = "sel"\n' + SHOP)
    assert cli.main(["config", "check", "--config", str(path)]) == 2
    assert expected in capsys.readouterr().err
    assert cli.main(["check", "--config", str(path)]) == 2  # every command refuses it, no traceback
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            GOOD.replace("headless = true", "headless = 1"), "config.toml:7: browser.headless:", id="bad-type"
        ),
        pytest.param(GOOD.replace("[[shops]]", "[[shop]]"), "config.toml:10: shop: unknown table", id="typo"),
        pytest.param(None, "config.toml: file not found", id="missing-file"),
    ],
)
def test_cli_config_check_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, text: str | None,
    expected: str,
) -> None:
    monkeypatch.setenv("PDD_PASSWORD_SHOP1", SECRET)
    path = _write(tmp_path, text) if text is not None else tmp_path / "config.toml"
    assert cli.main(["config", "check", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err and captured.out == ""
    assert SECRET not in captured.err


def test_cli_config_without_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config"]) == 2
    assert "check" in capsys.readouterr().out


# ---- durations ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    ("24h", 86400), ("30m", 1800), ("90s", 90), ("1h30m", 5400), (" 2d ", 172800), ("1h0m5s", 3605), ("0s", 0),
], ids=["hours", "minutes", "seconds", "compound", "days-padded", "h-m-s", "zero"])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "24", "1x", "-1h", "1.5h", "30m1h", "1 h"],
                         ids=["empty", "unit-only", "bare-number", "bad-unit", "negative", "decimal", "wrong-order",
                              "inner-space"])
def test_parse_duration_rejects_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match=r'invalid duration .*expected e\.g\. "24h"'):
        parse_duration(text)


def test_alert_stages_are_read_from_the_config_strings(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, """
        [alerts]
        aftersale_before = ["30m", "24h"]
        evidence_before = ["1h"]
        health_cooldown = "1h"
        [[shops]]
        name = "店"
        username = "店"
        base_url = "http://127.0.0.1:9/"
        """))
    cfg = rules_config(config)
    assert cfg.aftersale_before == (86400, 1800) and cfg.evidence_before == (3600,) and cfg.health_cooldown == 3600


SHOP = '[[shops]]\nname = "店"\nusername = "店"\nbase_url = "http://127.0.0.1:9/"\n'


def test_the_old_single_limit_is_read_as_max_pages_with_a_deprecation(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "[browser]\nmax_concurrent_shops = 3\n" + SHOP))
    assert config.browser.pages == 3 and config.browser.max_concurrent_checks == 100
    [note] = config.deprecations()
    assert "max_concurrent_shops is deprecated (read as max_pages = 3)" in note and "max_concurrent_checks" in note
    both = load_config(_write(tmp_path, "[browser]\nmax_concurrent_shops = 3\nmax_pages = 4\n" + SHOP))
    assert both.browser.pages == 4 and "max_pages wins" in both.deprecations()[0]
    assert load_config(_write(tmp_path, SHOP)).deprecations() == []


def test_the_old_health_port_is_read_as_the_web_listen_address(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert load_config(_write(tmp_path, SHOP)).listen_addresses() == ("127.0.0.1:8700",)
    old = load_config(_write(tmp_path, "[agent]\nhealth_port = 9108\n" + SHOP))
    assert old.listen_addresses() == ("127.0.0.1:8700",) and old.health_addresses() == ("127.0.0.1:9108",)
    [note] = old.deprecations()
    assert "127.0.0.1:9108 still answers /healthz and /metrics" in note and "(127.0.0.1:8700)" in note
    lan = load_config(_write(tmp_path, '[agent]\nhealth_port = 9108\nhealth_host = "0.0.0.0"\n' + SHOP))
    assert lan.health_addresses() == ("0.0.0.0:9108",) and lan.web_on_loopback()  # the old keys keep working
    path = _write(tmp_path, "[agent]\nhealth_port = 9108\n" + SHOP)
    assert cli.main(["config", "check", "--config", str(path)]) == 0
    assert "health_port / agent.health_host are deprecated" in capsys.readouterr().err
    with pytest.raises(ConfigError) as exc:  # the page beyond loopback without anybody who can log in
        load_config(_write(tmp_path, '[web]\nlisten = "0.0.0.0:8700"\n' + SHOP))
    assert "web.listen" in str(exc.value)


def test_config_check_prints_deprecations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "[browser]\nmax_concurrent_shops = 3\n" + SHOP)
    assert cli.main(["config", "check", "--config", str(path)]) == 0
    assert "max_concurrent_shops is deprecated" in capsys.readouterr().err


@pytest.mark.parametrize(("proxy", "ok"), [
    ("http://u:p@10.0.0.1:3128", True), ("https://proxy.example.cn:443", True), ("socks5://127.0.0.1:1080", True),
    ("socks5://u:p@127.0.0.1:1080", False), ("http://proxy.example.cn", False), ("ftp://x:21", False),
    ("garbage-proxy-value", False),
], ids=["http-auth", "https", "socks5", "socks5-auth", "no-port", "ftp", "garbage"])
def test_shop_proxy_is_checked_without_echoing_it(tmp_path: Path, proxy: str, ok: bool) -> None:
    text = SHOP + f'proxy = "{proxy}"\n'
    if ok:
        assert load_config(_write(tmp_path, text)).shops[0].proxy == proxy
    else:
        msg = _error(tmp_path, text)
        assert "shops[0].proxy" in msg and "代理地址无效" in msg and proxy not in msg


def test_shop_proxy_from_the_environment_is_masked_in_the_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_PROXY", "http://shop1:s3cr%40t@10.1.2.3:3128")
    config = load_config(_write(tmp_path, SHOP + 'proxy = "${SHOP_PROXY}"\nuser_agent = "UA/1"\nlocale = "zh-TW"\n'))
    shop = config.shops[0]
    assert shop.proxy_parts() == ("http://10.1.2.3:3128", "shop1", "s3cr@t")
    assert shop.proxy_shown == "http://***@10.1.2.3:3128" and (shop.user_agent, shop.locale) == ("UA/1", "zh-TW")
    dumped = json.dumps(masked(config), ensure_ascii=False)
    assert "s3cr" not in dumped and "shop1" not in dumped and "http://***@10.1.2.3:3128" in dumped


def test_the_cluster_table_is_checked_and_its_secrets_masked(tmp_path: Path) -> None:
    base = '[[shops]]\nname = "店"\nusername = "店"\n[cluster]\n'
    msg = _error(tmp_path, base + 'database_url = "mysql://u:p@h/db"\n')
    assert "cluster.database_url" in msg and "PostgreSQL URL" in msg and "u:p@" not in msg
    msg = _error(tmp_path, base + 'database_url = "postgresql://pdd:pw@db:5432/pdd"\n')
    assert "cluster.session_keys: required with database_url" in msg
    msg = _error(tmp_path, base + 'database_url = "postgresql://pdd:pw@db/pdd"\nsession_keys = "not-a-key"\n')
    assert "cluster.session_keys" in msg and "Fernet" in msg
    key = "X3vXb0Hq0P0pqgC3mJbYx6m6z8b9Vq2Zr0cW8m4kLhE="
    good = base + f'database_url = "postgresql://pdd:pw@db/pdd"\nsession_keys = "{key}"\n'
    config = load_config(_write(tmp_path, good))
    assert config.store_at() == "postgresql://pdd:pw@db/pdd"
    shown = json.dumps(masked(config))
    assert key not in shown and ":pw@" not in shown and "***@db/pdd" in shown
