"""Sandbox HTML: login, home, setup guide, workbench shell, detail page; CSS-module class hashing.

Texts and DOM hooks follow mms-backend.md; every dynamic text is HTML-escaped.
"""

from __future__ import annotations

import hashlib
import json
from html import escape

from agent.sandbox import items as it

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BEAST_VERSION = "5-111-0"  # beast-core component classes carry a version, not a hash

# CSS-module names used by the workbench; each gets `__<hash>` per build, as in a real bundle.
MODULE_CLASSES = (
    "after-sales-table_table", "after-sales-table_order_item", "after-sales-table_item_cell",
    "after-sales-table_checkbox_wrap", "after-sales-table_body",
    "table-item-header_header", "table-item-header_label", "table-item-header_sn",
    "table-item-header_apply_time", "table-item-header_time",
    "order-info_main", "order-info_sub", "order-info_thumb", "order-info_wrap",
    "amount_dotted", "amount_refund",
    "aftersale-data_board", "aftersale-data_item", "aftersale-data_label", "aftersale-data_value",
    "quick-filter_wrap", "pagination_wrap", "pagination_total", "toast_wrap", "empty_tip",
)


def class_hash(build: str, name: str) -> str:
    digest = hashlib.sha1(f"{build}:{name}".encode()).digest()
    n = int.from_bytes(digest[:8], "big")
    out = ""
    for _ in range(5):
        n, r = divmod(n, 62)
        out += _B62[r]
    return out


def class_map(build: str) -> dict[str, str]:
    """Module class name -> hashed class name for one build."""
    names = {name: f"{name}__{class_hash(build, name)}" for name in MODULE_CLASSES}
    names["MmsUiQuickFilter___count"] = f"MmsUiQuickFilter___count___{class_hash(build, 'qf-count')}"
    names["MmsUiQuickFilter___label"] = f"MmsUiQuickFilter___label___{class_hash(build, 'qf-label')}"
    return names


_BASE_CSS = """
body{margin:0;font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;background:#f4f5f7;color:#151516;font-size:14px}
.mms-header{height:52px;background:#fff;display:flex;align-items:center;padding:0 24px;border-bottom:1px solid #e5e5e5}
.mms-header .logo{color:#e02e24;font-weight:bold;font-size:18px;margin-right:24px}
.mms-layout{display:flex}
.mms-sidenav{width:180px;background:#fff;min-height:calc(100vh - 53px);padding:12px 0}
.mms-sidenav .group{color:#9c9c9c;padding:8px 20px;font-size:12px}
.mms-sidenav a{display:block;padding:8px 28px;color:#151516;text-decoration:none}
.mms-sidenav a:hover{color:#e02e24}
.mms-main{flex:1;padding:16px 24px}
.panel{background:#fff;padding:16px;margin-bottom:16px;border-radius:4px}
button,[data-testid=beast-core-button]{background:#e02e24;color:#fff;border:0;border-radius:4px;padding:8px 18px;cursor:pointer}
button.secondary{background:#fff;color:#151516;border:1px solid #d5d5d5}
"""


def page(title: str, body: str, *, css: str = "", head: str = "") -> str:
    return (
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_BASE_CSS}{css}</style>{head}</head>"
        f"<body>{body}</body></html>"
    )


def chrome(shop_name: str, username: str, main: str) -> str:
    """Header and sidebar shared by the logged-in pages."""
    return (
        f"<div class=\"mms-header\"><span class=\"logo\">拼多多 商家后台</span>"
        f"<span class=\"mall-name\">{escape(shop_name)}</span>"
        f"<span style=\"margin-left:auto\" class=\"user-name\">{escape(username)}</span></div>"
        "<div class=\"mms-layout\"><nav class=\"mms-sidenav\" data-testid=\"mms-sidenav\">"
        "<div class=\"group\">订单管理</div><a href=\"/orders/list?msfrom=mms_sidenav\">订单查询</a>"
        "<div class=\"group\">售后管理</div>"
        "<a href=\"/aftersales/aftersale_list?msfrom=mms_sidenav\">退款/售后</a>"
        "<a href=\"/aftersales/work_order/list?msfrom=mms_sidenav\">工单管理</a>"
        "<a href=\"/aftersales/aftersale_violation/list?msfrom=mms_sidenav\">售后违规</a>"
        f"</nav><main class=\"mms-main\">{main}</main></div>"
    )


def login_page() -> str:
    css = """
.login-center{width:420px;margin:80px auto;background:#fff;padding:28px 36px;border-radius:8px;box-shadow:0 2px 12px #0001}
.login-tab{display:flex;gap:24px;margin-bottom:20px;font-size:16px}
.login-tab div{cursor:pointer;padding-bottom:6px}
.login-tab div.active{color:#e02e24;border-bottom:2px solid #e02e24}
.password-section input,.sms-section input{display:block;width:100%;box-sizing:border-box;margin:10px 0;padding:10px;border:1px solid #d5d5d5;border-radius:4px}
.password-section button{width:100%;margin-top:8px}
.login-error{color:#e02e24;min-height:20px;margin-top:8px}
.qr-section img{width:200px;height:200px;display:block;margin:10px auto}
.qr-tip{text-align:center;color:#9c9c9c}
[data-testid=beast-core-modal]{position:fixed;inset:0;background:#0006;display:flex;align-items:center;justify-content:center}
.modal-body{background:#fff;padding:20px;border-radius:8px;text-align:center}
.hidden{display:none !important}
"""
    body = """
<div class="login-center">
  <div class="login-tab">
    <div class="Common_item__3diIn active" data-tab="qrcode">扫码登录</div>
    <div class="Common_item__3diIn" data-tab="account">账号登录</div>
  </div>
  <section class="qr-section" data-section="qrcode">
    <img class="qr-code" alt="登录二维码">
    <p class="qr-tip">请使用拼多多商家版App扫码登录</p>
  </section>
  <section class="password-section hidden" data-section="account">
    <input id="usernameId" placeholder="请输入账号名/手机号" autocomplete="username">
    <input id="passwordId" type="password" placeholder="请输入密码" autocomplete="current-password">
    <div class="sms-section hidden">
      <input placeholder="请输入短信验证码" maxlength="6">
      <button type="button" class="secondary sms-send">获取验证码</button>
      <button type="button" class="sms-confirm">确定</button>
    </div>
    <button type="button" data-testid="beast-core-button" class="login-submit">登录</button>
    <div class="login-error" role="alert"></div>
  </section>
</div>
<div data-testid="beast-core-modal" class="captcha-modal hidden">
  <div class="modal-body"><div class="captcha-title">安全验证</div>
    <img src="/static/captcha.svg" alt="拼图" width="280" height="150">
    <p>请向右滑块完成拼图</p><div class="captcha-slider">&#9654;</div></div>
</div>
<script src="/static/login.js"></script>
"""
    return page("拼多多商家后台 - 登录", body, css=css)


def counters_html(counters: dict[str, int], cls: dict[str, str]) -> str:
    parts = [
        f"<div class=\"{cls['aftersale-data_item']}\"><span class=\"{cls['aftersale-data_label']}\">"
        f"{escape(label)}</span> <span class=\"{cls['aftersale-data_value']}\">{n}</span>单</div>"
        for label, n in counters.items()
    ]
    return f"<div class=\"{cls['aftersale-data_board']}\" data-section=\"aftersale-data\">售后数据{''.join(parts)}</div>"


def home_page(shop_name: str, username: str, counters: dict[str, int], build: str) -> str:
    cls = class_map(build)
    main = (
        "<div class=\"panel\"><h3>待办事项</h3>"
        f"{counters_html(counters, cls)}</div>"
        "<div class=\"panel\"><h3>店铺公告</h3><p>双12大促报名进行中，请及时处理售后，避免逾期。</p></div>"
    )
    css = f".{cls['aftersale-data_item']}{{display:inline-block;margin:8px 24px 0 0}}"
    return page("拼多多商家后台", chrome(shop_name, username, main), css=css)


def setup_page(shop_name: str, username: str) -> str:
    # The live guide's markup is unknown (mms-backend.md §1.1): the sandbox shows a plain interstitial.
    main = (
        "<div class=\"panel setup-guide\"><h2>售后设置</h2>"
        "<p>完善售后设置，提升售后处理效率。请先完成退货地址、售后自动化等设置。</p>"
        "<button type=\"button\">去设置</button></div>"
    )
    return page("售后设置", chrome(shop_name, username, main))


def workbench_page(
    shop_name: str, username: str, build: str, filter_codes: dict[str, int], all_code: int, counters: dict[str, int]
) -> str:
    cls = class_map(build)
    config = {
        "classes": cls,
        "beast": BEAST_VERSION,
        "filters": [{"label": lb, "code": filter_codes[lb], "countKey": it.COUNT_KEYS[lb]} for lb in it.FILTER_LABELS],
        "allCode": all_code,
        "counters": counters,
    }
    css = f"""
.{cls['quick-filter_wrap']}{{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}}
[data-testid=beast-core-card]{{background:#fff;border:1px solid #e5e5e5;border-radius:4px;padding:10px 14px;cursor:pointer;min-width:96px}}
.CAD_beastCardChecked_{BEAST_VERSION}{{border-color:#e02e24;color:#e02e24}}
.{cls['MmsUiQuickFilter___count']}{{display:block;font-size:20px;font-weight:bold}}
.{cls['aftersale-data_item']}{{display:inline-block;margin:8px 24px 0 0}}
.{cls['after-sales-table_order_item']}{{background:#fff;margin-bottom:10px;border:1px solid #eee}}
.{cls['table-item-header_header']}{{background:#f7f8fa;padding:8px 12px;display:flex;gap:18px;font-size:13px}}
.{cls['table-item-header_time']}{{color:#e02e24}}
.{cls['after-sales-table_body']}{{display:grid;grid-template-columns:3fr 1fr 1fr 1fr 1.4fr 1fr 2fr 1fr;gap:8px;padding:10px 12px}}
.{cls['order-info_sub']}{{color:#9c9c9c;font-size:12px}}
.{cls['pagination_wrap']}{{display:flex;gap:6px;list-style:none;align-items:center;padding:0}}
.{cls['pagination_wrap']} li{{border:1px solid #ddd;padding:3px 9px;cursor:pointer;background:#fff}}
.{cls['pagination_wrap']} li[aria-current=page]{{border-color:#e02e24;color:#e02e24}}
.PGT_disabled_{BEAST_VERSION}{{opacity:.4;pointer-events:none}}
.{cls['toast_wrap']}{{position:fixed;top:20px;left:50%;background:#333;color:#fff;padding:8px 16px;border-radius:4px}}
"""
    main = (
        "<div class=\"panel\"><h3>售后工作台</h3><div id=\"aftersale-app\" data-loading=\"true\">加载中…</div></div>"
    )
    head = f"<script>window.__MMS_BUILD__={json.dumps(config, ensure_ascii=False)};</script>"
    body = chrome(shop_name, username, main) + "<script src=\"/static/workbench.js\"></script>"
    return page("退款/售后 - 拼多多商家后台", body, css=css, head=head)


def detail_page(shop_name: str, username: str, row: dict[str, object], remain: int | None) -> str:
    remain_text = it.dhms(remain) if remain is not None else "—"
    fields = [
        ("售后编号", row["id"]), ("订单编号", row["orderSn"]), ("售后类型", row["afterSalesTypeName"]),
        ("售后状态", row["afterSalesTitle"]), ("售后原因", row["afterSalesReasonDesc"]),
        ("商品", f"{row['goodsName']} {row['goodsSpec']}"),
        ("退款金额", f"¥{int(row['refundAmount']) / 100:.2f}"),  # type: ignore[call-overload]
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in fields)
    main = (
        "<div class=\"panel aftersale-detail\"><h2>售后详情</h2>"
        f"<div class=\"remain\"><span class=\"remain-label\">剩余处理时间</span> "
        f"<span class=\"remain-value\">{escape(remain_text)}</span></div>"
        f"<table class=\"detail-table\">{rows}</table></div>"
    )
    return page("售后详情", chrome(shop_name, username, main))
