"""Network failures said for a person (pure): what failed, on which address, and what to check — one line, never
an exception group's repr or Playwright's call log (those go to the log file)."""

from __future__ import annotations

import re

_KINDS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.IGNORECASE), text) for p, text in (
    (r"ECONNREFUSED|Connection refused|ERR_CONNECTION_REFUSED|Errno 111|connect call failed",
     "连接被拒绝，检查地址和端口（base_url）/ connection refused"),
    (r"ENOTFOUND|getaddrinfo|Name or service not known|ERR_NAME_NOT_RESOLVED|nodename nor servname|"
     r"Temporary failure in name resolution|EAI_AGAIN|No address associated",
     "域名解析失败，检查域名和 DNS / DNS lookup failed"),
    (r"ERR_PROXY|ERR_TUNNEL|Proxy Authentication|\b407\b|ProxyError",
     "代理连接失败，检查店铺的 proxy / the proxy failed"),
    (r"CERT|SSL|TLS|ERR_SSL",
     "TLS 证书或加密握手失败 / TLS (certificate) error"),
    (r"ETIMEDOUT|timed out|Timeout|ERR_TIMED_OUT|ReadTimeout|ConnectTimeout",
     "连接超时，检查网络 / timed out"),
    (r"ECONNRESET|Connection reset|ERR_CONNECTION_RESET|ERR_CONNECTION_CLOSED|EPIPE|RemoteProtocolError|"
     r"Server disconnected|ERR_EMPTY_RESPONSE",
     "连接被对方断开 / the connection was closed"),
    (r"ENETUNREACH|EHOSTUNREACH|Network is unreachable|No route to host|ERR_INTERNET_DISCONNECTED|"
     r"ERR_ADDRESS_UNREACHABLE",
     "网络不可达，检查本机网络 / network unreachable"),
))


def flatten(exc: BaseException) -> str:
    """Every message in an exception and its groups, causes and contexts, one per line."""
    out: list[str] = []
    seen: set[int] = set()

    def walk(e: BaseException | None) -> None:
        if e is None or id(e) in seen:
            return
        seen.add(id(e))
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            out.append(f"{type(e).__name__}: {e}")
        walk(e.__cause__)
        walk(e.__context__)

    walk(exc)
    return "\n".join(out)


def describe(error: BaseException | str, url: str = "") -> str:
    """One line for a person: the kind of failure and `url`, or the first meaningful line of the error."""
    text = flatten(error) if isinstance(error, BaseException) else error
    where = f"{url}：" if url else ""
    for pattern, said in _KINDS:
        if pattern.search(text):
            return f"{where}{said}"
    first = next((ln.strip() for ln in text.splitlines()
                  if ln.strip() and not ln.strip().startswith(("Call log", "-", "=")) and "TaskGroup" not in ln), "")
    return f"{where}{first[:200]}" if first else f"{where}network error"
