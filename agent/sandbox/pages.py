"""Sandbox HTML: login, home, setup guide, workbench shell, detail page; CSS-module class hashing.

Texts and DOM hooks follow mms-backend.md; every dynamic text is HTML-escaped.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from html import escape
from typing import TYPE_CHECKING

from agent.sandbox import items as it
from agent.sandbox.risk import module_names

if TYPE_CHECKING:
    from agent.sandbox.records import Settings

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BEAST_VERSION = "5-111-0"  # beast-core component classes carry a version, not a hash

# CSS-module names used by the workbench; each gets `__<hash>` per build, as in a real bundle.
# Row, header and amount modules are PDD's (mms-live-2026.md §C, high); the board, filter and toast
# modules are the sandbox's names.
MODULE_CLASSES = (
    "after-sales-table_table", "after-sales-table_order_item", "after-sales-table_item_cell",
    "after-sales-table_checkbox_wrap", "after-sales-table_body",
    "table-item-header_item_header", "table-item-header_label", "table-item-header_sn",
    "table-item-header_apply_timestamp", "table-item-header_apply_time",
    "table-item-header_expiration", "table-item-header_time", "table-item-header_expired",
    "table-item-order-info_main", "table-item-order-info_sub", "table-item-order-info_wrap",
    "table-item-amount_received", "table-item-amount_refund", "table-item-amount_dotted",
    "aftersale-data_board", "aftersale-data_item", "aftersale-data_label", "aftersale-data_value",
    "quick-filter_wrap", "toast_wrap", "empty_tip", "floating-captcha_wrap",
)
# The 「售后数据」 header counters: label -> queryWaitHandleCount result key (§B, high)
HEADER_COUNTERS = (
    ("24小时内将逾期订单数", "expiringNum"), ("24小时内待商家举证", "expireIn24HoursWaitSellerProof"),
    ("24小时内平台同意退款", "refundedByPlatformLast24Hours"), ("24小时内将逾期工单数", "expireIn24HoursTicketNum"),
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
    """The login page as the live bundle builds it (mms-live-2026.md §H): tabs, the canvas QR, the
    password form with its error element, the SMS step, the picture and slider captchas, risk screens."""
    css = """
.login-center{width:420px;margin:80px auto;background:#fff;padding:28px 36px;border-radius:8px;box-shadow:0 2px 12px #0001}
.login-tab .operationTabs{display:flex;gap:24px;margin-bottom:20px;font-size:16px}
.login-tab .item{cursor:pointer;padding-bottom:6px}
.login-tab .item.checked{color:#e02e24;border-bottom:2px solid #e02e24}
.info-content input,.sms-verify input,.picture-captcha input{display:block;width:100%;box-sizing:border-box;margin:10px 0;padding:10px;border:1px solid #d5d5d5;border-radius:4px}
.password-section button{width:100%;margin-top:8px}
.info-error-text,.msg-input-error{color:#e02e24;min-height:20px;display:block;margin-top:8px}
.qr-code{position:relative;width:200px;height:200px;margin:10px auto}
.qr-code canvas{width:200px;height:200px;display:block}
.qr-mask{position:absolute;inset:0;background:#fffe;display:flex;flex-direction:column;align-items:center;justify-content:center}
.qr-tip,.qr-status{text-align:center;color:#9c9c9c}
.account-risk{color:#e02e24;padding:12px 0}
[data-testid=beast-core-modal]{position:fixed;inset:0;background:#0006;display:flex;align-items:center;justify-content:center}
.modal-body{background:#fff;padding:20px;border-radius:8px;text-align:center}
.hidden{display:none !important}
"""
    body = """
<div class="login-center">
  <div class="login-tab"><div class="tab-operate"><div class="operationTabs">
    <div class="item checked" data-tab="qrcode">扫码登录</div>
    <div class="item" data-tab="account">账号登录</div>
  </div></div></div>
  <div class="scan-login-container" data-section="qrcode">
    <div class="qr-code"><canvas width="200" height="200" aria-label="登录二维码"></canvas>
      <div class="qr-mask hidden"><p class="qr-mask-text">二维码已失效</p>
        <button type="button" class="qr-refresh">点击刷新</button></div></div>
    <p class="qr-status"></p>
    <p class="qr-tip">打开拼多多商家版App扫码登录</p>
  </div>
  <div class="password-section hidden" data-section="account">
    <div class="info-content">
      <input id="usernameId" placeholder="请输入账号名/手机号" autocomplete="username">
      <input id="passwordId" type="password" placeholder="请输入密码" autocomplete="current-password">
    </div>
    <div class="info-danger-warn"><div class="info-danger-container"><span class="info-error-text"></span></div></div>
    <button type="button" data-testid="beast-core-button" class="login-submit">登录</button>
    <div class="account-risk hidden"></div>
  </div>
  <div class="sms-verify hidden">
    <div class="sms-title">为了您的账号安全，请验证手机号后继续登录</div>
    <input placeholder="请输入短信验证码" maxlength="6">
    <button type="button" class="secondary sms-send">获取验证码</button>
    <div class="verify-error-container"><span class="msg-input-error"></span></div>
    <button type="button" class="sms-confirm">确定</button>
  </div>
</div>
<div data-testid="beast-core-modal" class="picture-captcha hidden">
  <div class="modal-body"><div class="captcha-title">请先输入图形验证码</div>
    <img class="picture-captcha-img" alt="图形验证码" width="120" height="40">
    <input placeholder="请输入图形验证码" maxlength="6"></div>
</div>
<div data-testid="beast-core-modal" class="captcha-modal hidden">
  <div class="modal-body"><div class="captcha-title">安全验证</div>
    <img src="/static/captcha.svg" alt="拼图" width="280" height="150">
    <p>请向右滑块完成拼图</p><div class="captcha-slider">&#9654;</div></div>
</div>
<script src="/static/risk.js"></script>
<script src="/static/login.js"></script>
"""
    return page("拼多多商家后台 - 登录", body, css=css)


def counters_html(counters: dict[str, int], cls: dict[str, str]) -> str:
    """Label, value, 「单」 per counter (§B); `counters` is queryWaitHandleCount's result."""
    parts = [
        f"<div class=\"{cls['aftersale-data_item']}\"><span class=\"{cls['aftersale-data_label']}\">"
        f"{escape(label)}</span> <span class=\"{cls['aftersale-data_value']}\">{counters.get(key, 0)}</span>单</div>"
        for label, key in HEADER_COUNTERS
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


def workbench_page(shop_name: str, username: str, settings: Settings) -> str:
    cls = class_map(settings.build)
    config = {
        "risk_module": module_names(settings.build)["module"],  # the page and its risk SDK are one build
        "classes": cls,
        "beast": BEAST_VERSION,
        # runtime JSS classes of the pagination change with every page load (mms-live-2026.md §G)
        "jss": secrets.token_hex(3),
        "filters": [
            {"label": c.label, "code": settings.filter_codes[c.label], "countKey": c.count_key,
             "expireSort": c.expire_sort}
            for c in it.CARDS
        ],
        "pageLoadCode": settings.filter_codes["投诉预警"],
        "headerCounters": HEADER_COUNTERS,
        "pageSizeChanger": settings.page_size_changer,
        "quickFilterSort": settings.quick_filter_sort,
        "waitSellerCode": settings.filter_codes["待商家处理"],
    }
    css = f"""
.{cls['quick-filter_wrap']}{{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}}
[data-testid=beast-core-card]{{background:#fff;border:1px solid #e5e5e5;border-radius:4px;padding:10px 14px;cursor:pointer;min-width:96px}}
.CAD_beastCardChecked_{BEAST_VERSION}{{border-color:#e02e24;color:#e02e24}}
.{cls['MmsUiQuickFilter___count']}{{display:block;font-size:20px;font-weight:bold}}
.{cls['aftersale-data_item']}{{display:inline-block;margin:8px 24px 0 0}}
.{cls['after-sales-table_order_item']}{{background:#fff;margin-bottom:10px;border:1px solid #eee}}
.{cls['table-item-header_item_header']}{{background:#f7f8fa;padding:8px 12px;display:flex;gap:18px;font-size:13px}}
.{cls['table-item-header_expired']}{{color:#e02e24}}
.{cls['after-sales-table_body']}{{display:grid;grid-template-columns:3fr 1fr 1fr 1fr 1.4fr 1fr 2fr 1fr;gap:8px;padding:10px 12px}}
.{cls['table-item-order-info_sub']}{{color:#9c9c9c;font-size:12px}}
[data-testid=beast-core-pagination]{{display:flex;gap:6px;list-style:none;align-items:center;padding:0}}
[data-testid=beast-core-pagination] li{{border:1px solid #ddd;padding:3px 9px;cursor:pointer;background:#fff;position:relative}}
[data-testid=beast-core-select-dropdown]{{position:absolute;bottom:100%;left:0;background:#fff;border:1px solid #ddd;list-style:none;padding:0;margin:0}}
.{cls['toast_wrap']}{{position:fixed;top:20px;left:50%;background:#333;color:#fff;padding:8px 16px;border-radius:4px}}
.{cls['floating-captcha_wrap']}{{position:fixed;inset:0;background:#0006;display:flex;align-items:center;justify-content:center}}
.{cls['floating-captcha_wrap']} > div{{background:#fff;padding:20px;border-radius:8px;text-align:center}}
"""
    main = (
        "<div class=\"panel\"><h3>售后工作台</h3><div id=\"aftersale-app\" data-loading=\"true\">加载中…</div></div>"
    )
    head = f"<script>window.__MMS_BUILD__={json.dumps(config, ensure_ascii=False)};</script>"
    body = (chrome(shop_name, username, main) + "<script src=\"/static/risk.js\"></script>"
            "<script src=\"/static/workbench.js\"></script>")
    return page("退款/售后 - 拼多多商家后台", body, css=css, head=head)


def detail_page(shop_name: str, username: str, row: dict[str, object], remain: int | None) -> str:
    remain_text = it.dhms(remain) if remain is not None else "—"
    fields = [
        ("售后编号", row["id"]), ("订单编号", row["orderSn"]), ("售后类型", it.TYPE_NAMES.get(int(row["afterSalesType"]), "售后")),  # type: ignore[call-overload]
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
