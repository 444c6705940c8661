"""Cookies in Playwright's storage-state form (pure): which go with a request, what a Set-Cookie answer changes.

A shop's session file holds its cookies as the browser saved them (`{"name", "value", "domain", "path",
"expires", "httpOnly", "secure", "sameSite"}`, `expires` -1 for a session cookie, a `domain` with a leading dot
for a domain cookie). Request-only checks send them without a browser and keep what the backend sets, so the
browser finds the same session the next time it opens the file. RFC 6265's matching rules, as far as a
same-site backend needs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

Cookie = dict[str, Any]


def _domain_ok(host: str, cookie: Mapping[str, Any]) -> bool:
    domain = str(cookie.get("domain", "")).lower()
    if domain.startswith("."):
        return host == domain[1:] or host.endswith(domain)
    return host == domain


def _path_ok(path: str, cookie_path: str) -> bool:
    if path == cookie_path or not cookie_path:
        return True
    return path.startswith(cookie_path) and (cookie_path.endswith("/") or path[len(cookie_path)] == "/")


def _alive(cookie: Mapping[str, Any], now: float) -> bool:
    expires = cookie.get("expires", -1)
    return not isinstance(expires, int | float) or expires < 0 or expires > now


def cookie_header(cookies: Iterable[Mapping[str, Any]], url: str, now: float) -> str:
    """The Cookie header a browser would send with a request to `url` ("" when none goes)."""
    u = urlsplit(url)
    host, path, https = (u.hostname or "").lower(), u.path or "/", u.scheme == "https"
    chosen = [c for c in cookies if _domain_ok(host, c) and _path_ok(path, str(c.get("path", "/")))
              and (https or not c.get("secure")) and _alive(c, now)]
    chosen.sort(key=lambda c: -len(str(c.get("path", "/"))))  # longer paths first, as browsers do
    return "; ".join(f"{c['name']}={c['value']}" for c in chosen)


def _default_path(path: str) -> str:
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[: path.rindex("/")]


def parse_set_cookie(header: str, url: str, now: float) -> Cookie | None:
    """One Set-Cookie header as a storage-state cookie (`expires` 0 when it deletes one); None when unusable."""
    first, *attrs = header.split(";")
    name, sep, value = first.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        return None
    u = urlsplit(url)
    host = (u.hostname or "").lower()
    cookie: Cookie = {"name": name, "value": value, "domain": host, "path": _default_path(u.path or "/"),
                      "expires": -1, "httpOnly": False, "secure": False, "sameSite": "Lax"}
    max_age: float | None = None
    for attr in attrs:
        key, _, val = attr.partition("=")
        key, val = key.strip().lower(), val.strip()
        if key == "domain" and val:
            domain = "." + val.lower().lstrip(".")
            if not (host == domain[1:] or host.endswith(domain)):
                return None  # a cookie for another site: a browser refuses it too
            cookie["domain"] = domain
        elif key == "path" and val.startswith("/"):
            cookie["path"] = val
        elif key == "max-age":
            try:
                max_age = float(int(val))
            except ValueError:
                continue
        elif key == "expires" and max_age is None:
            try:
                cookie["expires"] = parsedate_to_datetime(val).timestamp()
            except (TypeError, ValueError):
                continue
        elif key == "httponly":
            cookie["httpOnly"] = True
        elif key == "secure":
            cookie["secure"] = True
        elif key == "samesite" and val:
            cookie["sameSite"] = val.capitalize()
    if max_age is not None:
        cookie["expires"] = now + max_age if max_age > 0 else 0.0
    return cookie


def apply_set_cookies(cookies: Sequence[Mapping[str, Any]], headers: Iterable[str], url: str,
                      now: float) -> tuple[list[Cookie], bool]:
    """`cookies` after an answer's Set-Cookie headers (a cookie replaced by name, domain and path; an expired
    one removed), and whether anything changed."""
    out = [dict(c) for c in cookies]
    changed = False
    for header in headers:
        new = parse_set_cookie(header, url, now)
        if new is None:
            continue
        same = next((i for i, c in enumerate(out) if (c.get("name"), c.get("domain"), c.get("path"))
                     == (new["name"], new["domain"], new["path"])), None)
        gone = not _alive(new, now)
        if same is None:
            if not gone:
                out.append(new)
                changed = True
            continue
        old = out[same]
        if gone:
            del out[same]
            changed = True
        elif any(old.get(k) != new[k] for k in ("value", "expires", "httpOnly", "secure")):
            # a new expiry alone is a change only when it moves by a minute or more (no write per answer)
            moved = abs(float(old.get("expires", -1)) - float(new["expires"])) >= 60
            if old.get("value") != new["value"] or moved or old.get("httpOnly") != new["httpOnly"] \
                    or old.get("secure") != new["secure"]:
                changed = True
            out[same] = {**old, **new}
    return out, changed
