"""`pdd-agent config check|show|init`: a short verdict with problems and warnings by key and line (like `nginx -t`),
the effective configuration with defaults and secrets masked, and a minimal commented config written for a start."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

from agent.cli.loading import load_or_report
from agent.config import masked
from agent.config.lint import lint
from agent.config.loader import dotted
from agent.config.toml_lines import line_map


def check(config_path: str, strict: bool = False) -> int:
    """0: valid (warnings allowed unless `strict`: then 1); 2: problems (each printed with file, line and key)."""
    config = load_or_report(config_path)
    if config is None:
        return 2
    lines = line_map(config.path.read_text(encoding="utf-8-sig"))
    found = lint(config, os.environ)
    types = Counter(n.type for n in config.notifiers.values())
    enabled = sum(1 for s in config.shops if s.enabled)
    kinds = "，".join(f"{t} {n}" for t, n in sorted(types.items()))
    print(f"{config.path}：语法和取值正确 / syntax and values ok")
    print(f"  店铺 {len(config.shops)} 家（启用 {enabled}），通知渠道 {len(config.notifiers)} 个"
          f"{f'（{kinds}）' if kinds else ''}，团队成员 {len(config.team.members)} 人"
          f"{'，多机（PostgreSQL）' if config.cluster.database_url else ''}")
    if config.agent.selectors_dir is not None:
        print(f"  选择器覆盖 / selectors override: {config.agent.selectors_dir}（已检查 / checked）")
    for note in config.deprecations():
        print(f"注意 / note: {note}", file=sys.stderr)
    for key, message in found:
        line = _line(lines, key)
        print(f"警告 / warning: {config.path.name}:{line}: {dotted(key)}: {message}")
    verdict = "配置有效 / config OK" + (f"（{len(found)} 条警告 / warnings）" if found else "")
    if found and strict:
        print(f"{verdict}；--strict：有警告即失败 / failing on warnings", file=sys.stderr)
        return 1
    print(verdict)
    return 0


def _line(lines: dict[tuple[str | int, ...], int], key: tuple[str | int, ...]) -> str:
    """The line of `key`, else of the nearest table holding it ("?" when none is written: a default)."""
    for n in range(len(key), 0, -1):
        if key[:n] in lines:
            return str(lines[key[:n]])
    return "?"


def show(config_path: str) -> int:
    """The effective configuration: every key with its default filled in, secrets and ${ENV} values masked."""
    config = load_or_report(config_path)
    if config is None:
        return 2
    print(json.dumps(masked(config), ensure_ascii=False, indent=2))
    return 0


def init(out: str, shops: int = 1, *, wecom: str = "", dingtalk: str = "", email: str = "",
         force: bool = False) -> int:
    """Write a minimal, commented, valid config to `out` (never over an existing file unless `force`)."""
    path = Path(out)
    if path.exists() and not force:
        print(f"{path} 已存在，未覆盖（加 --force 覆盖）/ {path} exists: not overwritten (use --force)",
              file=sys.stderr)
        return 2
    if not 1 <= shops <= 500:
        print("--shops: 1 到 500 / expected 1 to 500", file=sys.stderr)
        return 2
    path.write_text(starter(shops, wecom=wecom, dingtalk=dingtalk, email=email), encoding="utf-8")
    os.chmod(path, 0o600)  # a webhook URL is a secret
    print(f"已写入 {path}：填好子账号用户名和环境变量后运行 `pdd-agent config check --config {path}`\n"
          f"wrote {path}: fill in the account names and the environment variables, then run config check")
    return 0


def starter(shops: int, *, wecom: str = "", dingtalk: str = "", email: str = "") -> str:
    """The text `config init` writes: what a first run needs, each key commented in Chinese and English."""
    q = json.dumps  # a JSON string is a valid TOML basic string
    if dingtalk:
        channel = ['type = "dingtalk"', "# 钉钉群机器人的 Webhook（保密）/ the DingTalk robot's webhook (secret)",
                   f"webhook_url = {q(dingtalk)}",
                   "# 机器人安全设置为「加签」时：secret = \"${PDD_DINGTALK_SECRET}\" / when it signs requests"]
    elif email:
        channel = ['type = "email"', "# 发信服务器与账号（示例为腾讯企业邮）/ the SMTP server and login",
                   'host = "smtp.exmail.qq.com"', 'security = "ssl"', f"username = {q(email)}",
                   "# SMTP 密码（授权码）所在的环境变量名 / the variable holding the SMTP password",
                   'password_env = "PDD_SMTP_PASSWORD"', f"to = [{q(email)}]"]
    elif wecom:
        channel = ['type = "wecom"', "# 企业微信群机器人的 Webhook（保密）/ the WeCom group robot's webhook (secret)",
                   f"webhook_url = {q(wecom)}"]
    else:  # no channel given: the block to fill in, commented out, so that the file is valid as written
        channel = ['# type = "wecom"', "# 企业微信群机器人的 Webhook（保密）/ the WeCom group robot's webhook (secret)",
                   '# webhook_url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…"']
    text = [
        "# pdd-agent 配置文件，由 `pdd-agent config init` 生成。改完运行 `pdd-agent config check`。",
        "# pdd-agent config written by `pdd-agent config init`; run `pdd-agent config check` after each edit.",
        "# 每个键的含义与默认值见 docs/configuration.md。/ Every key and its default: docs/configuration.md.",
        "",
        "[agent]",
        "# 会话、数据库和日志放在这里（相对本文件）/ sessions, the store and logs (relative to this file)",
        'data_dir = "data"',
        "",
        "[schedule]",
        "# 每家店铺多久检查一次 / how often each shop is checked",
        'check_interval = "10m"',
        "",
        "[alerts]",
        "# 提醒发到哪些渠道（下面的 [notifiers.NAME]）/ the channels alerts go to",
        'notify = ["team"]' if channel[0].startswith("type") else
        '# notify = ["team"]    # 填好下面的渠道后取消注释 / uncomment once the channel below is filled in',
        "",
        "[notifiers.team]" if channel[0].startswith("type") else "# [notifiers.team]",
        *channel,
    ]
    for n in range(1, shops + 1):
        text += [
            "",
            "[[shops]]",
            "# 提醒里显示的店铺名 / the shop's name in alerts",
            f'name = "店铺{n}"',
            "# 登录用户名：请用只有售后权限的子账号（主账号:子账号名）/ a sub-account with the after-sales rights only",
            f'username = "请填写主账号名:子账号名{n}"',
            "# 密码不写进文件：写环境变量的名字 / never the password: the NAME of the variable that holds it",
            f'password_env = "PDD_SHOP{n}_PASSWORD"',
        ]
    return "\n".join(text) + "\n"
