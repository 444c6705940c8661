"""Cookies in storage-state form (core.cookies): what goes with a request, what Set-Cookie changes."""

from __future__ import annotations

from agent.core.cookies import apply_set_cookies, cookie_header, parse_set_cookie

NOW = 1_790_000_000.0


def c(name: str, value: str, domain: str = "mms.pinduoduo.com", path: str = "/", expires: float = -1,
      secure: bool = False) -> dict[str, object]:
    return {"name": name, "value": value, "domain": domain, "path": path, "expires": expires, "httpOnly": True,
            "secure": secure, "sameSite": "Lax"}


def test_the_header_holds_host_domain_and_path_matches_only() -> None:
    jar = [c("PASS_ID", "p1"), c("api_uid", "u1", domain=".pinduoduo.com"), c("other", "x", domain="yangkeduo.com"),
           c("deep", "d", path="/mercury"), c("deeper", "e", path="/mercury/mms"), c("elsewhere", "z", path="/janus")]
    got = cookie_header(jar, "https://mms.pinduoduo.com/mercury/mms/afterSales/queryList", NOW)
    assert got == "deeper=e; deep=d; PASS_ID=p1; api_uid=u1"  # longest path first, then as saved
    assert cookie_header(jar, "https://pinduoduo.com/", NOW) == "api_uid=u1"  # a domain cookie fits the domain too
    assert cookie_header(jar, "https://evilpinduoduo.com/", NOW) == ""
    assert "deep=" not in cookie_header(jar, "https://mms.pinduoduo.com/mercuryX", NOW)  # path boundary


def test_expired_and_secure_cookies_stay_home() -> None:
    jar = [c("old", "1", expires=NOW - 1), c("fresh", "2", expires=NOW + 60), c("tls", "3", secure=True)]
    assert cookie_header(jar, "http://mms.pinduoduo.com/", NOW) == "fresh=2"
    assert cookie_header(jar, "https://mms.pinduoduo.com/", NOW) == "fresh=2; tls=3"


def test_set_cookie_is_read_as_a_browser_reads_it() -> None:
    got = parse_set_cookie("PASS_ID=abc; Path=/; Max-Age=3600; SameSite=Lax; HttpOnly", "http://127.0.0.1:8080/x", NOW)
    assert got == {"name": "PASS_ID", "value": "abc", "domain": "127.0.0.1", "path": "/", "expires": NOW + 3600,
                   "httpOnly": True, "secure": False, "sameSite": "Lax"}
    dom = parse_set_cookie("a=b; Domain=pinduoduo.com; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure",
                           "https://mms.pinduoduo.com/login/", NOW)
    assert dom is not None and dom["domain"] == ".pinduoduo.com" and dom["secure"] and dom["path"] == "/login"
    assert dom["expires"] == 1792567680.0
    assert parse_set_cookie("a=b; Domain=example.com", "https://mms.pinduoduo.com/", NOW) is None  # another site
    assert parse_set_cookie("novalue", "https://mms.pinduoduo.com/", NOW) is None


def test_an_answer_replaces_adds_and_deletes_and_says_whether_anything_changed() -> None:
    jar = [c("PASS_ID", "old", domain="127.0.0.1"), c("rckk", "r", domain="127.0.0.1")]
    url = "http://127.0.0.1:8080/janus/api/checkLogin"
    same, changed = apply_set_cookies(jar, ["rckk=r; Path=/; HttpOnly"], url, NOW)
    assert not changed and same[1]["value"] == "r"
    out, changed = apply_set_cookies(jar, ["PASS_ID=new; Path=/; HttpOnly", "api_uid=u; Path=/; Max-Age=60; HttpOnly",
                                           "rckk=; Path=/; Max-Age=0"], url, NOW)
    assert changed
    assert [(x["name"], x["value"]) for x in out] == [("PASS_ID", "new"), ("api_uid", "u")]
    assert jar[0]["value"] == "old"  # the input is left alone
    _, moved = apply_set_cookies(out, ["api_uid=u; Path=/; Max-Age=90; HttpOnly"], url, NOW)
    assert not moved  # an expiry 30 s later is not worth a write
    _, moved = apply_set_cookies(out, ["api_uid=u; Path=/; Max-Age=7200; HttpOnly"], url, NOW)
    assert moved
