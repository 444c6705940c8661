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
    p.set_defaults(func=_cmd_sandbox)

    g = sub.add_parser("sandbox-gen", help="write a generated sandbox scenario (seeded, realistic)", add_help=False)
    g.add_argument("args", nargs=argparse.REMAINDER)
    g.set_defaults(func=_cmd_sandbox_gen)

    d = sub.add_parser("demo", help="the demo: the bundled sandbox with the demo scenario")
    d.add_argument("--port", type=int, default=0)
    d.add_argument("--duration", type=float, default=0, help="stop after N seconds (0: run until Ctrl-C)")
    d.set_defaults(func=_cmd_demo)


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from agent.sandbox.run import run_sandbox

    return run_sandbox(
        host=args.host, port=args.port, scenario=args.scenario, build=args.build,
        blind_navigation=args.blind_navigation, clock_rate=args.clock_rate, verbose=args.verbose,
    )


def _cmd_sandbox_gen(args: argparse.Namespace) -> int:
    from agent.sandbox.generate import main as gen_main

    return gen_main(list(args.args))


def _cmd_demo(args: argparse.Namespace) -> int:
    from agent.sandbox.run import run_demo

    return run_demo(port=args.port, duration=args.duration)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pdd-agent", description="拼多多售后逾期预警 / Pinduoduo after-sales deadline alerts"
    )
    parser.add_argument("--version", action="version", version=f"pdd-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_sandbox(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))
