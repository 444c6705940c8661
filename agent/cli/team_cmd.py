"""`pdd-agent team`: a member's page password (its scrypt hash written into the TOML), read-only API tokens."""

from __future__ import annotations

import getpass
import json
import re
import sys
import time
import tomllib
from pathlib import Path

from agent.cli.loading import load_or_report
from agent.outbox.store import Store
from agent.outbox.team_store import Team
from agent.web.auth import hash_password

_HEADER = re.compile(r"^\s*\[")
_MEMBERS = re.compile(r"^\s*\[\[\s*team\.members\s*\]\]\s*(#.*)?$")
_HASH = re.compile(r"^\s*password_hash\s*=")


def set_hash(text: str, name: str, hashed: str) -> str:
    """`text` (a TOML file) with `password_hash` of the [[team.members]] entry named `name` set to `hashed`;
    comments and everything else kept. ValueError when there is no such member."""
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        if not _MEMBERS.match(lines[i]):
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if _HEADER.match(lines[j])), len(lines))
        block = "".join(lines[i + 1:end])
        try:
            entry = tomllib.loads(block)
        except tomllib.TOMLDecodeError:
            entry = {}
        if entry.get("name") == name:
            new = f"password_hash = {json.dumps(hashed)}\n"
            for j in range(i + 1, end):
                if _HASH.match(lines[j]):
                    lines[j] = new
                    return "".join(lines)
            name_at = next(j for j in range(i + 1, end) if re.match(r"^\s*name\s*=", lines[j]))
            if not lines[name_at].endswith("\n"):
                lines[name_at] += "\n"
            lines.insert(name_at + 1, new)
            return "".join(lines)
        i = end
    raise ValueError(f"no [[team.members]] entry with name = {json.dumps(name, ensure_ascii=False)}")


def passwd(config_path: str, name: str, from_stdin: bool = False) -> int:
    config = load_or_report(config_path)
    if config is None:
        return 2
    if config.team.member(name) is None:
        print(f"{config_path}: 没有这个成员 / no member {name!r}: add it first:\n  [[team.members]]\n"
              f"  name = \"{name}\"\n"
              "  mobile = \"138…\"", file=sys.stderr)
        return 2
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"{name} 的新密码 / new password: ")
        if getpass.getpass("再输入一次 / again: ") != password:
            print("两次输入不一致 / the passwords differ", file=sys.stderr)
            return 1
    if len(password) < 8:
        print("密码至少 8 位 / at least 8 characters", file=sys.stderr)
        return 1
    path = Path(config.path)
    path.write_text(set_hash(path.read_text(encoding="utf-8"), name, hash_password(password)), encoding="utf-8")
    print(f"已设置 {name} 的密码（{path} 中只保存哈希）/ password hash written; a running service needs a restart")
    return 0


def token(config_path: str, name: str, revoke: bool = False) -> int:
    config = load_or_report(config_path)
    if config is None:
        return 2
    store = Store(config.store_at())
    try:
        team = Team(store)
        if revoke:
            ok = team.revoke(name)
            print("已吊销 / revoked" if ok else f"没有这个令牌 / no token {name!r}")
            return 0 if ok else 1
        value = team.new_token(name, time.time())
    finally:
        store.close()
    print(f"只读 API 令牌 {name}（只显示这一次）/ read-only token, shown once:\n{value}\n"
          f"用法 / use: curl -H 'Authorization: Bearer {value}' http://…/api/v1/status")
    return 0


def main(config_path: str, action: str, name: str, *, from_stdin: bool = False) -> int:
    if action == "passwd":
        return passwd(config_path, name, from_stdin)
    return token(config_path, name, revoke=action == "revoke")
