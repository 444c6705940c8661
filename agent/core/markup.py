"""Markup (pure): escaping untrusted text and writing lines of pieces in each channel's dialect, with its size.

A message is blocks of lines; a line is pieces: ("t", text) escaped text, ("b", text) bold, ("c", text, colour),
("k", text) a command, ("l", label, url) a link (the URL already checked by `safe_url`). Buyer text is only ever
"t" or "b", and every dialect escapes it for itself:

- "wecom": WeCom group-robot markdown (`<font color>`, `**`, links; `<@…>` and `<…>` tags must not pass);
- "dingtalk": DingTalk markdown (its official subset: headings, bold, links, lists; no colour);
- "feishu": a Feishu `post` (rich text as JSON nodes: text, a, at), so nothing in buyer text is markup at all;
- "text": plain text (email's text part, WeCom app text, Apprise); `<a>` tags and @ must not pass either.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

DIALECTS = ("wecom", "dingtalk", "feishu", "text")
SEP = "\n\n"
_WS = re.compile(r"\s+")
# control characters, zero-width and bidirectional overrides (which can disguise text)
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")
# markdown specials → full-width look-alikes: no tags (<@all>, <font>, <script>), no links, no formatting
_MD = str.maketrans({"<": "＜", ">": "＞", "@": "＠", "[": "［", "]": "］", "*": "＊", "`": "｀", "#": "＃",
                     "&": "＆", "\\": "＼"})
# DingTalk markdown also reads _italic_ and ![image](url); its text @ is a mention when the number is in atMobiles
_DMD = str.maketrans({"<": "＜", ">": "＞", "@": "＠", "[": "［", "]": "］", "*": "＊", "`": "｀", "#": "＃",
                      "&": "＆", "\\": "＼", "_": "＿", "!": "！", "|": "｜"})
# plain text: no @ (WeCom text <@userid>, DingTalk @phone, Feishu <at>), no tags (WeCom app text renders <a href>)
_TXT = str.maketrans({"@": "＠", "<": "＜", ">": "＞"})
_HEX = {"warning": "#e8590c", "info": "#2b8a3e", "comment": "#868e96"}

Piece = tuple[str, ...]
Line = list[Piece]


def _clean(text: str) -> str:
    return _WS.sub(" ", _CTRL.sub("", text))


def md_escape(text: str) -> str:
    """Untrusted text for WeCom markdown: one line, no tags, mentions, links or formatting."""
    return _clean(text).translate(_MD)


def dmd_escape(text: str) -> str:
    """Untrusted text for DingTalk markdown: as `md_escape`, and no _italic_, images or tables."""
    return _clean(text).translate(_DMD)


def text_escape(text: str) -> str:
    """Untrusted text for plain text (WeCom `text`, where <@userid> would ping; app text, where <a> is a link)."""
    return _clean(text).translate(_TXT)


def html_escape(text: str) -> str:
    return html.escape(_clean(text), quote=True)


def safe_url(url: str) -> str:
    """An http(s) URL safe inside a markdown link and an href (brackets, quotes, spaces encoded); else ""."""
    url = url.strip()
    if not re.match(r"https?://", url, re.IGNORECASE):
        return ""
    return quote(url, safe="/:?#&=%+,;~!$.-_")


def _markup(lines: Sequence[Line], pieces: Mapping[str, Callable[..., str]], plain: Callable[[str], str],
            newline: str) -> str:
    """Lines of pieces in one markup: each piece by its kind ("b" bold, "c" colour, "k" command, "l" link)."""
    return newline.join("".join(pieces[p[0]](*p[1:]) if p[0] in pieces else plain(p[1]) for p in line)
                        for line in lines)


_MD_PIECES: dict[str, Callable[..., str]] = {
    "b": lambda s: f"**{md_escape(s)}**",
    "c": lambda s, colour: f'<font color="{colour}">{md_escape(s)}</font>',
    "k": lambda s: "`" + _clean(s).translate(str.maketrans({"`": "'", "<": "＜", ">": "＞"})) + "`",
    "l": lambda label, url: f"[{md_escape(label)}]({url})",
}
_DMD_PIECES: dict[str, Callable[..., str]] = {
    "b": lambda s: f"**{dmd_escape(s)}**",
    # no colour in DingTalk's subset, and bold next to bold ("**a****b**") breaks: 【badges】 stand out by themselves
    "c": lambda s, colour: dmd_escape(s),
    "k": lambda s: _clean(s).translate(str.maketrans({"<": "＜", ">": "＞", "@": "＠", "[": "［", "]": "］"})),
    "l": lambda label, url: f"[{dmd_escape(label)}]({url})",
}
_HTML_PIECES: dict[str, Callable[..., str]] = {
    "b": lambda s: f"<b>{html_escape(s)}</b>",
    "c": lambda s, colour: f'<span style="color:{_HEX[colour]}">{html_escape(s)}</span>',
    "k": lambda s: f"<code>{html_escape(s)}</code>",
    "l": lambda label, url: f'<a href="{html.escape(url, quote=True)}">{html_escape(label)}</a>',
}
_TEXT_PIECES: dict[str, Callable[..., str]] = {"l": lambda label, url: f"{label}：{url}"}


def _md(lines: Sequence[Line]) -> str:
    return _markup(lines, _MD_PIECES, md_escape, "\n")


def _dmd(lines: Sequence[Line]) -> str:
    # a single newline is not a line break in every DingTalk client: two trailing spaces make it one
    return _markup(lines, _DMD_PIECES, dmd_escape, "  \n")


def _text(lines: Sequence[Line]) -> str:
    return _markup(lines, _TEXT_PIECES, text_escape, "\n")


def _html(lines: Sequence[Line]) -> str:
    return _markup(lines, _HTML_PIECES, html_escape, "<br>")


def _post_node(p: Piece) -> dict[str, str]:
    if p[0] == "l":
        return {"tag": "a", "text": _clean(p[1]), "href": p[2]}
    return {"tag": "text", "text": text_escape(p[1])}


def post_content(title: str, blocks: Sequence[Sequence[Line]]) -> dict[str, Any]:
    """A Feishu `post` (zh_cn): the title, then one paragraph per line, an empty paragraph between blocks."""
    paragraphs: list[list[dict[str, str]]] = []
    for n, block in enumerate(blocks):
        if n:
            paragraphs.append([{"tag": "text", "text": ""}])
        paragraphs += [[_post_node(p) for p in line if p[0] == "l" or p[1]] or [{"tag": "text", "text": ""}]
                       for line in block]
    return {"zh_cn": {"title": text_escape(title), "content": paragraphs}}


def body(dialect: str, title: str, blocks: Sequence[Sequence[Line]]) -> str:
    """The message body in `dialect`: markdown with a `###` title, a post as JSON text, or plain text."""
    if dialect == "wecom":
        return SEP.join([f"### {md_escape(title)}", *(_md(b) for b in blocks)])
    if dialect == "dingtalk":
        return SEP.join([f"### {dmd_escape(title)}", *(_dmd(b) for b in blocks)])
    if dialect == "feishu":
        return json.dumps(post_content(title, blocks), ensure_ascii=False, separators=(",", ":"))
    return SEP.join([text_escape(title), *(_text(b) for b in blocks)])


def size(dialect: str, title: str, blocks: Sequence[Sequence[Line]]) -> int:
    """The UTF-8 bytes of `body(dialect, …)`: what a channel's byte limit is measured on."""
    return len(body(dialect, title, blocks).encode("utf-8"))


def page(title: str, blocks: Sequence[str]) -> str:
    """A minimal UTF-8 HTML page for email: the title, then one <div> per block."""
    inner = "".join(f'<div style="margin:10px 0;line-height:1.6">{b}</div>' for b in blocks)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html_escape(title)}</title></head>'
            f'<body style="font-family:sans-serif;font-size:14px"><h3>{html_escape(title)}</h3>{inner}'
            '<p style="color:#868e96;font-size:12px">pdd-agent 自动发送</p></body></html>')
