"""The `pdd-agent` command line: parses arguments and hands off to the command modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agent import __version__


def _add_sandbox(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sandbox", help="run the simulated merchant backend (模拟商家后台)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument(
        "--scenario", default="demo", help="a scenario JSON file, or a built-in name (demo, big_shop, logins)"
    )
    p.add_argument("--build", help="CSS-module build hash for class names")
    p.add_argument("--blind-navigation", choices=["never", "sometimes", "always"])
    p.add_argument("--clock-rate", type=float, help="sandbox seconds per real second")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.add_argument("--replay", metavar="FILE.zip",
                   help="serve a diagnostics bundle's recorded pages and answers instead of a scenario (回放诊断包)")
    p.set_defaults(func=_cmd_sandbox)

    g = sub.add_parser("sandbox-gen", help="write a generated sandbox scenario (seeded, realistic)", add_help=False)
    g.add_argument("args", nargs=argparse.REMAINDER)
    g.set_defaults(func=_cmd_sandbox_gen)

    d = sub.add_parser("demo", help="the whole story against the bundled sandbox: what the team would receive (演示)")
    d.add_argument("--port", type=int, default=0, help="the sandbox's port (0: a free one)")
    d.add_argument("--fast", action="store_true", help="no pauses between the steps (the CI smoke test)")
    d.add_argument("--no-color", action="store_true", help="plain text even on a terminal")
    d.set_defaults(func=_cmd_demo)


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from agent.config import locators
    from agent.sandbox.run import run_replay, run_sandbox

    if args.replay:
        return run_replay(host=args.host, port=args.port, bundle=args.replay, verbose=args.verbose)

    selectors = f"选择器 / selectors:      {locators.default_dir()} ({len(locators.load())} files)"
    return run_sandbox(
        host=args.host, port=args.port, scenario=args.scenario, build=args.build,
        blind_navigation=args.blind_navigation, clock_rate=args.clock_rate, verbose=args.verbose,
        extra=[selectors],
    )


def _cmd_sandbox_gen(args: argparse.Namespace) -> int:
    from agent.sandbox.generate import main as gen_main

    return gen_main(list(args.args))


def _cmd_demo(args: argparse.Namespace) -> int:
    from agent.cli.demo import run_demo

    return run_demo(port=args.port, fast=args.fast, color=False if args.no_color else None)


def _add_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="the agent's TOML configuration (配置文件)")
    p.set_defaults(func=lambda _args: (p.print_help(), 2)[1])
    actions = p.add_subparsers(dest="config_command", metavar="ACTION")
    c = actions.add_parser("check", help="validate a config file: problems and warnings by key and line (检查配置)")
    c.add_argument("--config", default="config.toml", help="the config file (default: ./config.toml)")
    c.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    c.set_defaults(func=lambda a: _run("agent.cli.config_cmd", a.config, a.strict, entry="check"))
    s = actions.add_parser("show", help="the effective configuration, defaults filled in, secrets masked (显示配置)")
    s.add_argument("--config", default="config.toml")
    s.set_defaults(func=lambda a: _run("agent.cli.config_cmd", a.config, entry="show"))
    i = actions.add_parser("init", help="write a minimal commented config to start from (生成配置文件)")
    i.add_argument("-o", "--output", default="config.toml", help="where to write it (default: ./config.toml)")
    i.add_argument("--shops", type=int, default=1, help="how many [[shops]] tables (default 1)")
    to = i.add_mutually_exclusive_group()
    to.add_argument("--wecom", default="", metavar="URL", help="a WeCom group robot's webhook")
    to.add_argument("--dingtalk", default="", metavar="URL", help="a DingTalk group robot's webhook")
    to.add_argument("--email", default="", metavar="ADDR", help="an email address (SMTP login and recipient)")
    i.add_argument("--force", action="store_true", help="overwrite an existing file")
    i.set_defaults(func=lambda a: _run("agent.cli.config_cmd", a.output, a.shops, wecom=a.wecom,
                                       dingtalk=a.dingtalk, email=a.email, force=a.force, entry="init"))


def _add_agent(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser("check", help="check the shops once and print what is pending (sends nothing)")
    c.add_argument("--config", default="config.toml")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--shop", help="only this shop")
    c.add_argument("--mode", choices=["auto", "api", "page"], default="auto",
                   help="auto: API mode once bodies are learned, page mode otherwise and as fallback")
    c.set_defaults(func=lambda a: _run("agent.cli.check_cmd", a.config, as_json=a.json, shop=a.shop, mode=a.mode))

    d = sub.add_parser("doctor", help="walk the backend's pages and report which selectors match")
    d.add_argument("--config", default="config.toml")
    d.add_argument("--shop", required=True)
    d.add_argument("--bundle", metavar="FILE.zip",
                   help="also record the walk as a redacted diagnostics bundle (诊断包) to send to the maintainers")
    d.add_argument("--probe-signing", action="store_true",
                   help="call each endpoint once cookie-only and once signed, and report what the site demanded")
    d.set_defaults(func=lambda a: _run("agent.cli.doctor", a.config, a.shop, bundle=a.bundle,
                                       probe_signing=a.probe_signing))

    lg = sub.add_parser("login", help="log a shop in by hand (password, SMS code, QR) and save its session")
    lg.add_argument("--config", default="config.toml")
    lg.add_argument("--shop", required=True)
    lg.add_argument("--headed", action="store_true", help="open a visible window (for a slider captcha)")
    lg.add_argument("--qr", action="store_true", help="log in by scanning the QR code")
    lg.set_defaults(func=lambda a: _run("agent.cli.login_cmd", a.config, a.shop, headed=a.headed, qr=a.qr))


def _add_service(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = sub.add_parser("run", help="the service: check shops on schedule and send alerts until stopped (常驻运行)")
    r.add_argument("--config", default="config.toml")
    r.add_argument("--once", action="store_true",
                   help="one full cycle (check every shop, send alerts), then exit: 0 when everything went out")
    r.add_argument("--log-json", action="store_true", help="log JSON lines (for journald / log collectors)")
    r.set_defaults(func=lambda a: _run("agent.cli.run_cmd", a.config, once=a.once, log_json=a.log_json))

    rl = sub.add_parser("reload", help="check the config, then make the running service re-read it (重新加载配置)")
    rl.add_argument("--config", default="config.toml")
    rl.set_defaults(func=lambda a: _run("agent.cli.reload_cmd", a.config))

    st = sub.add_parser("status", help="what the running service knows: shops, sessions, deadlines, outbox (状态)")
    st.add_argument("--config", default="config.toml")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=lambda a: _run("agent.cli.status_cmd", a.config, as_json=a.json))


def _add_alerts(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    n = sub.add_parser("notify-test", help="send a test message through one channel and print its answer")
    n.add_argument("--config", default="config.toml")
    n.add_argument("--channel", required=True, help="a [notifiers.NAME] name")
    n.set_defaults(func=lambda a: _run("agent.cli.notify_test", a.config, a.channel))


def _add_team(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser("team", help="the team page: members' passwords, read-only API tokens (团队页面)")
    t.set_defaults(func=lambda _args: (t.print_help(), 2)[1])
    acts = t.add_subparsers(dest="team_command", metavar="ACTION")
    for name, text in (("passwd", "set a member's page password (its hash is written into the config)"),
                       ("token", "make a read-only API token for a monitor (printed once)"),
                       ("revoke", "revoke a read-only API token")):
        p = acts.add_parser(name, help=text)
        p.add_argument("name", help="the member's name" if name == "passwd" else "the token's name")
        p.add_argument("--config", default="config.toml")
        if name == "passwd":
            p.add_argument("--stdin", action="store_true", help="read the password from standard input (scripts)")
        p.set_defaults(func=lambda a, act=name: _run("agent.cli.team_cmd", a.config, act, a.name,
                                                     from_stdin=getattr(a, "stdin", False)))


def _add_cluster(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser("cluster", help="several nodes on one PostgreSQL ([cluster] database_url) (多机)")
    c.set_defaults(func=lambda _args: (c.print_help(), 2)[1])
    acts = c.add_subparsers(dest="cluster_command", metavar="ACTION")
    for name, text in (("migrate", "create or update the shared tables (also done when a node starts)"),
                       ("status", "the nodes, their heartbeats and shops, the check jobs, the outbox"),
                       ("import", "move one machine's SQLite store (data_dir/agent.db) into the empty PostgreSQL"),
                       ("key", "print a new key for [cluster] session_keys (the shared sessions' encryption)")):
        p = acts.add_parser(name, help=text)
        p.add_argument("--config", default="config.toml")
        if name == "import":
            p.add_argument("--from", dest="source", help="the SQLite file (default: data_dir/agent.db)")
        p.set_defaults(func=lambda a, act=name: _run("agent.cli.cluster_cmd", a.config, act,
                                                     getattr(a, "source", None)))


def _run(module: str, *args: object, entry: str = "main", **kwargs: object) -> int:
    """Import a command module only when it runs (Playwright is not needed for `config check`) and call its
    `entry` function."""
    import importlib

    from agent.cli.logsetup import setup

    setup("WARNING")
    return int(getattr(importlib.import_module(module), entry)(*args, **kwargs))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pdd-agent", description="拼多多售后逾期预警 / Pinduoduo after-sales deadline alerts"
    )
    parser.add_argument("--version", action="version", version=f"pdd-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_sandbox(sub)
    _add_config(sub)
    _add_agent(sub)
    _add_service(sub)
    _add_alerts(sub)
    _add_team(sub)
    _add_cluster(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))
