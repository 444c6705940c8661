"""The sandbox's Anti-Content: a risk script (one per build, module ids and names moved by the build) that mints a
token from the server time, the user agent, the `_nano_fp` fingerprint, the `rckk` cookie and a nonce; and the
server's per-endpoint policy that checks it (none → present → valid → fresh → single use → bound to the user agent →
to the fingerprint → to the account). Only running the script produces a valid value: its key is hidden in it."""

from __future__ import annotations

import hashlib
import json
import random
from collections import OrderedDict
from dataclasses import dataclass, field

LEVELS = ("none", "present", "valid", "fresh", "single", "ua", "fingerprint", "account")
PREFIX = "0as"  # PDD's values start like this


def mix(text: str, seed: int = 2166136261) -> int:
    """FNV-1a over UTF-16 code units, as the script computes it (charCodeAt, Math.imul, >>> 0)."""
    h, data = seed, text.encode("utf-16-le")
    for i in range(0, len(data), 2):
        h ^= data[i] | (data[i + 1] << 8)
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def build_key(build: str) -> str:
    """The build's signing key (what the script hides)."""
    return hashlib.sha256(f"pdd-sandbox-risk:{build}".encode()).hexdigest()[:24]


def module_names(build: str) -> dict[str, str]:
    """What a new build renames: the SDK's module id and its inner names (code hard-coding them breaks)."""
    rng = random.Random(f"names:{build}")
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def name(n: int) -> str:
        return "".join(rng.choice(letters) for _ in range(n))

    return {"module": name(4), "klass": name(2), "key": name(3), "mix": name(2), "chunk": f"{rng.randrange(100, 999)}"}


def mint(build: str, server_ms: int, ua: str, fp: str, rckk: str, nonce: str) -> str:
    """The token the script mints (the same fields and arithmetic, for the tests)."""
    fields = [_b36(server_ms), nonce, _b36(mix(ua)), _b36(mix(fp)), _b36(mix(rckk))]
    mac = _b36(mix(build_key(build) + "|" + "|".join(fields)))
    return PREFIX + ".".join([*fields, mac])


@dataclass
class Verdict:
    ok: bool
    reason: str = ""


@dataclass
class RiskPolicy:
    """Per business route (path) the level demanded; `default` for the rest. `fresh_seconds`: how old a token may
    be; `score`: the chance a valid token still gets 54001 (a risk score)."""

    levels: dict[str, str] = field(default_factory=dict)
    default: str = "none"
    fresh_seconds: float = 30.0
    score: float = 0.0
    live_headers: bool = False  # a mercury call must also carry `etag` = its rckk cookie, as the live page's do
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)  # nonces already used

    def level(self, route: str) -> str:
        return self.levels.get(route, self.default)

    def check(self, route: str, token: str, *, build: str, server_ms: int, ua: str, fp: str, rckk: str,
              rng: random.Random, etag: str | None = None) -> Verdict:
        """Whether `token` satisfies the route's policy (the caller answers 54001 when not)."""
        if self.live_headers and route.startswith("/mercury/") and etag is not None and etag != rckk:
            return Verdict(False, "no etag")
        level = LEVELS.index(self.level(route))
        if level == 0:
            return Verdict(True)
        if not token:
            return Verdict(False, "no Anti-Content")
        if level == 1:
            return Verdict(True)
        parts = token[len(PREFIX):].split(".") if token.startswith(PREFIX) else []
        if len(parts) != 6:
            return Verdict(False, "not a token of this build")
        ts, nonce, h_ua, h_fp, h_rckk, mac = parts
        if mac != _b36(mix(build_key(build) + "|" + "|".join(parts[:5]))):
            return Verdict(False, "invalid signature (another build, or not minted by the script)")
        if level >= 3 and abs(server_ms - int(ts, 36)) > self.fresh_seconds * 1000:
            return Verdict(False, "stale")
        if level >= 4:
            if nonce in self.seen:
                return Verdict(False, "used before")
            self.seen[nonce] = None
            while len(self.seen) > 100_000:
                self.seen.popitem(last=False)
        if level >= 5 and h_ua != _b36(mix(ua)):
            return Verdict(False, "another user agent")
        if level >= 6 and h_fp != _b36(mix(fp)):
            return Verdict(False, "another fingerprint")
        if level >= 7 and h_rckk != _b36(mix(rckk)):
            return Verdict(False, "another account")
        if self.score and rng.random() < self.score:
            return Verdict(False, "risk score")
        return Verdict(True)


def script(build: str) -> str:
    """risk.js of `build`: registers the SDK module in `webpackChunkmms` the way the page's bundle does; its key is
    spread over character codes, its names move with the build."""
    n = module_names(build)
    codes = [ord(c) ^ 0x5A for c in build_key(build)]
    return f"""/* sandbox risk SDK, build {build} */
(self.webpackChunkmms = self.webpackChunkmms || []).push([[{n['chunk']}], {{
  {json.dumps(n['module'])}: function (module, exports) {{
    var {n['key']} = {json.dumps(codes)}.map(function (c) {{ return String.fromCharCode(c ^ 90); }}).join("");
    function {n['mix']}(s) {{
      var h = 2166136261;
      for (var i = 0; i < s.length; i++) {{ h ^= s.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }}
      return h;
    }}
    function b36(x) {{ return (x >>> 0).toString(36); }}
    function cookie(name) {{
      var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
      return m ? decodeURIComponent(m[1]) : "";
    }}
    function {n['klass']}(opts) {{ this.serverTime = (opts && opts.serverTime) || Date.now(); }}
    {n['klass']}.prototype.messagePack = function () {{
      var nonce = Math.random().toString(36).slice(2, 12);
      var f = [Math.floor(this.serverTime).toString(36), nonce, b36({n['mix']}(navigator.userAgent)),
               b36({n['mix']}(cookie("_nano_fp"))), b36({n['mix']}(cookie("rckk")))];
      return "{PREFIX}" + f.concat([b36({n['mix']}({n['key']} + "|" + f.join("|")))]).join(".");
    }};
    module.exports = {n['klass']};
  }}
}}]);
"""
