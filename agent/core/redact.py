"""What never leaves the merchant's machine in a diagnostics bundle: every redaction rule, in one place.

Secrets (cookies, tokens, passwords, webhook keys, account names) become 「[redacted]」 or 「***」; buyer data becomes
a stand-in of the same length and script (汉字 for 汉字, digits for digits), the same stand-in for the same value
everywhere in the bundle, so rows, pages and answers still relate. Order numbers and buyer ids are re-mapped digit
by digit. Pure: the bundle writer feeds it JSON, headers, URLs and page text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

REDACTED = "[redacted]"
SCRUBBED = "***"

# header names whose value is a credential (Anti-Content signs a request; ETag on the QR answer is a fingerprint)
SECRET_HEADER = re.compile(
    r"(?i)^(cookie|set-cookie|anti-content|verifyauthtoken|authorization|proxy-authorization|etag"
    r"|.*(token|sign|auth|session|secret|passid|fingerprint).*)$"
)
# JSON keys and query parameters whose value is a credential, whatever the endpoint
SECRET_KEY = re.compile(
    r"(?i)(token|ticket|passw|secret|^sign$|signature|cookie|session|fingerprint|^key$|webhook|pass_?id|^uri$"
    r"|verif(y|ication)code|captcha|^data$|nano_?fp|rckk)"
)
# buyer data by key: free text (names, addresses, reasons, remarks), phone numbers, ids, parcels
BUYER_TEXT_KEYS = frozenset({
    "afterSalesReasonDesc", "reason", "reasonDesc", "mallRemark", "remark", "buyerRemark", "buyerMessage",
    "questionDesc", "receiverName", "buyerName", "nickname", "nickName",
    "receiverAddress", "address", "consignee", "province", "city", "district", "town", "detailAddress",
})
PHONE_KEYS = frozenset({"mobile", "phone", "receiverMobile", "receiverPhone", "telephone", "buyerMobile"})
ID_KEYS = frozenset({"uid", "buyerId", "buyerUid", "userId", "customerId"})
ORDER_KEYS = frozenset({"orderSn", "order_sn", "parentOrderSn", "orderSN"})
PARCEL_KEYS = frozenset({"reverseTrackingNumber", "trackingNumber", "shippingId", "waybillNo"})
ACCOUNT_KEYS = frozenset({"username", "userName", "accountName", "account", "loginName"})
# a mainland mobile number in free text, also half-masked (138****1234)
PHONE_TEXT = re.compile(r"(?<!\d)1[3-9]\d(?:\d{4}|\*{4})\d{4}(?!\d)")
ORDER_TEXT = re.compile(r"(?<!\d)\d{6}-\d{15}(?!\d)")

_HAN = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥金木水火土山川田禾米"
RULES = {
    "header": "credential headers (Cookie, Set-Cookie, Anti-Content, verifyauthtoken, Authorization, ETag, *token*)",
    "cookie": "cookie values in the HAR's cookie lists",
    "secret_key": "credential fields and query parameters (token, password, sign, uri, fingerprint, …)",
    "secret_value": "the shop's password, account name, webhook keys and cookie values, anywhere (raw, "
                    "URL-encoded, base64)",
    "account": "account names (username fields)",
    "buyer_text": "buyer names, addresses, reasons and remarks (stand-ins of the same length and script)",
    "phone": "phone numbers (fields and free text)",
    "buyer_id": "buyer ids (uid, buyerId, …), re-mapped",
    "order_sn": "order numbers, re-mapped consistently",
    "parcel": "return parcel numbers",
}


class Redactor:
    """One bundle's redaction: `key` seeds the stand-ins (random per bundle, never written), `secrets` are
    literal values that must not appear anywhere. `counts` says what was redacted, by rule."""

    def __init__(self, key: bytes, secrets: Iterable[str] = ()) -> None:
        self._key = key
        self.counts: Counter[str] = Counter()
        self.mapping: dict[str, str] = {}  # original buyer value -> its stand-in (text, order numbers, ids)
        self._made: set[str] = set()  # the stand-ins handed out: never re-mapped when met again
        self._secrets: list[str] = []
        self.add_secrets(secrets)

    # ---- stand-ins --------------------------------------------------------------------------------
    def _rng(self, kind: str, value: str) -> random.Random:
        digest = hmac.new(self._key, f"{kind}\0{value}".encode(), hashlib.sha256).digest()
        return random.Random(digest)

    def stand_in(self, value: str, kind: str = "buyer_text") -> str:
        """The same-length, same-script stand-in for `value` (the same one every time in this bundle)."""
        if not value:
            return value
        known = self.mapping.get(value)
        if known is not None or value in self._made:
            return known or value
        rng = self._rng(kind, value)
        out = []
        for ch in value:
            if ch.isdigit():
                out.append(str(rng.randrange(10)))
            elif "\u4e00" <= ch <= "\u9fff":
                out.append(rng.choice(_HAN))
            elif ch.isascii() and ch.isalpha():
                letter = chr(ord("a") + rng.randrange(26))
                out.append(letter.upper() if ch.isupper() else letter)
            else:
                out.append(ch)  # punctuation, spaces, the dash of an order number, a mask's *
        stand = "".join(out)
        if stand == value and any(c.isalnum() for c in value):
            stand = "x" * len(value)  # a stand-in never equals what it stands for
        self.mapping[value] = stand
        self._made.add(stand)
        return stand

    def add_secrets(self, values: Iterable[str]) -> None:
        """Literal secrets (≥ 4 characters) scrubbed wherever they appear, in their common encodings too."""
        for v in values:
            if not v or len(v) < 4:
                continue
            raw = v.encode()
            forms = {v, quote(v, safe=""), quote_plus(v), base64.b64encode(raw).decode(),
                     base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
            self._secrets.extend(f for f in forms if len(f) >= 4 and f not in self._secrets)
        self._secrets.sort(key=len, reverse=True)

    # ---- text -------------------------------------------------------------------------------------
    def text(self, s: str) -> str:
        """Free text, a page or a body: secrets scrubbed, known buyer values replaced, phones and order numbers
        in the text re-mapped."""
        for secret in self._secrets:
            if secret in s:
                self.counts["secret_value"] += s.count(secret)
                s = s.replace(secret, SCRUBBED)
        for original in sorted(self.mapping, key=len, reverse=True):
            if len(original) >= 2 and original in s:
                s = s.replace(original, self.mapping[original])
        s = PHONE_TEXT.sub(lambda m: self._remap("phone", m.group(0)), s)
        return ORDER_TEXT.sub(lambda m: self._remap("order_sn", m.group(0)), s)

    def _remap(self, rule: str, found: str) -> str:
        if found in self._made:
            return found
        self.counts[rule] += 1
        return self.stand_in(found, rule)

    # ---- JSON -------------------------------------------------------------------------------------
    def json(self, value: Any, key: str = "") -> Any:
        """A redacted copy of a JSON value (`key`: the field it sits in)."""
        if isinstance(value, Mapping):
            return {k: self.json(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v, key) for v in value]
        if value is None or isinstance(value, bool):
            return value
        rule = self.rule_for(key)
        if rule is None:
            return self.text(value) if isinstance(value, str) else value
        self.counts[rule] += 1
        if rule in ("secret_key", "account"):
            if isinstance(value, str):
                self.add_secrets([value])  # wherever else it shows (a URL, a page, the report), it goes too
            return REDACTED if isinstance(value, str) else 0
        kind = {"buyer_id": "buyer_id", "order_sn": "order_sn", "phone": "phone"}.get(rule, "buyer_text")
        stand = self.stand_in(str(value), kind)
        return int(stand) if isinstance(value, int) and stand.isdigit() else stand

    @staticmethod
    def rule_for(key: str) -> str | None:
        """Which rule a JSON field or query parameter falls under (None: kept)."""
        if key in ORDER_KEYS:
            return "order_sn"
        if key in ID_KEYS:
            return "buyer_id"
        if key in PHONE_KEYS:
            return "phone"
        if key in BUYER_TEXT_KEYS:
            return "buyer_text"
        if key in PARCEL_KEYS:
            return "parcel"
        if key in ACCOUNT_KEYS:
            return "account"
        if key and SECRET_KEY.search(key):
            return "secret_key"
        return None

    def body(self, text: str, mime: str = "") -> str:
        """A request or response body: JSON field by field (re-serialized), a form by its fields, else as text."""
        stripped = text.lstrip()
        if "json" in mime or stripped[:1] in ("{", "["):
            try:
                return json.dumps(self.json(json.loads(text)), ensure_ascii=False)
            except ValueError:
                pass
        if "x-www-form-urlencoded" in mime:
            return self.query(text)
        return self.text(text)

    def learn(self, text: str, mime: str = "") -> None:
        """A first pass over a JSON body: its buyer values get their stand-ins, so pages replace them too."""
        try:
            self.json(json.loads(text))
        except ValueError:
            return

    # ---- HTTP ---------------------------------------------------------------------------------------
    def headers(self, headers: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for h in headers:
            name, value = str(h.get("name", "")), str(h.get("value", ""))
            if SECRET_HEADER.match(name):
                self.counts["header"] += 1
                self.add_secrets([value if len(value) >= 6 else "", *_cookie_values(value)])
                value = REDACTED
            else:
                value = self.text(value)
            out.append({**h, "name": name, "value": value})
        return out

    def cookies(self, cookies: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for c in cookies:
            self.counts["cookie"] += 1
            self.add_secrets([str(c.get("value", ""))])
            out.append({**c, "value": REDACTED})
        return out

    def query(self, qs: str) -> str:
        pairs = []
        for k, v in parse_qsl(qs, keep_blank_values=True):
            rule = self.rule_for(k)
            if rule is not None:
                self.counts[rule] += 1
                v = REDACTED if rule in ("secret_key", "account") else self.stand_in(v, rule)
            else:
                v = self.text(v)
            pairs.append((k, v))
        return urlencode(pairs)

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(query=self.query(parts.query) if parts.query else "",
                                         path=self.text(parts.path)))

    def summary(self) -> dict[str, dict[str, Any]]:
        """What was redacted, by rule: how many values and what the rule covers (for the manifest)."""
        return {rule: {"count": self.counts.get(rule, 0), "covers": text} for rule, text in RULES.items()}


def _cookie_values(header: str) -> list[str]:
    """The values of a Cookie or Set-Cookie header (`a=1; b=2`, attributes included: harmless)."""
    attributes = {"path", "domain", "expires", "max-age", "samesite", "priority"}
    pairs = [part.split("=", 1) for part in header.replace("\n", ";").split(";") if "=" in part]
    return [v.strip() for k, v in pairs if k.strip().lower() not in attributes and len(v.strip()) >= 6]
