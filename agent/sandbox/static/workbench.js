// Sandbox after-sales workbench (售后工作台): a small single-page app built like PDD's 2026-03 bundle
// (mms-live-2026.md §A-C, F, G): 9 cards, ?searchType=N, queryCount without a body, the header counters from
// queryWaitHandleCount, the countdown markup, beast-core pagination with a custom page-size Select, and the
// floating captcha on 54001.
(function () {
  "use strict";
  var B = window.__MMS_BUILD__, C = function (n) { return B.classes[n]; }, V = B.beast, J = B.jss;
  var app = document.getElementById("aftersale-app");
  var fromUrl = parseInt(new URLSearchParams(location.search).get("searchType"), 10);
  var st = {
    body: { pageNumber: 1, pageSize: 10, quickSearchType: fromUrl || B.pageLoadCode, orderByCreatedAtDesc: true,
      mallRemarkStatus: null, mallRemarkTag: null },
    total: 0, rows: [], fetchedAt: 0, counts: {}, header: {}, sizeOpen: false
  };
  var TYPE_NAMES = { 1: "仅退款", 2: "退货退款", 3: "换货", 4: "补寄" };

  function el(tag, cls, text, attrs) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }
  function toast(msg) {
    var t = el("div", C("toast_wrap"), msg, { role: "alert" });
    document.body.appendChild(t);
    setTimeout(function () { t.remove(); }, 3000);
  }
  // PDD's fetch plugins: 54001 raises the floating captcha and retries once a human passed it (§F).
  var captchaShown = null;  // one floating captcha at a time; concurrent 54001s wait for it
  function floatingCaptcha(token) {
    if (captchaShown) { return captchaShown; }
    captchaShown = new Promise(function (resolve) {
      var wrap = el("div", C("floating-captcha_wrap"), null, { "data-testid": "beast-core-modal" });
      var box = el("div");
      box.appendChild(el("div", null, "安全验证"));
      box.appendChild(el("img", null, null, { src: "/static/captcha.svg", width: 280, height: 150, alt: "拼图" }));
      box.appendChild(el("p", null, "请向右滑块完成拼图"));
      wrap.appendChild(box);
      document.body.appendChild(wrap);
      var timer = setInterval(function () {
        fetch("/janus/api/captcha/status?ticket=" + encodeURIComponent(token), { credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (d) {
            if (d.result && d.result.passed) {
              clearInterval(timer);
              wrap.remove();
              window.__VerifyAuthToken__ = token;
              document.cookie = "mms-mobile-captcha-cookie-token=" + token + "; path=/; max-age=600";
              captchaShown = null;
              resolve(token);
            }
          });
      }, 1000);
    });
    return captchaShown;
  }
  // the server time the risk SDK mints from: /api/server/_stm, extrapolated by the local clock (mmsCMT)
  var timeBase = null;
  function syncTime() {
    return fetch("/api/server/_stm", { credentials: "same-origin" }).then(function (r) { return r.json(); })
      .then(function (d) { timeBase = { server: d.server_time, local: Date.now() }; })
      .catch(function () { timeBase = null; });
  }
  function serverTime() {
    return timeBase ? timeBase.server + (Date.now() - timeBase.local) : Date.now();
  }
  function antiContent() {
    // mmsFetch's risk plugin: a fresh value per request from the build's SDK module (§F)
    try {
      var chunks = self.webpackChunkmms || [];
      for (var i = 0; i < chunks.length; i++) {
        var factory = chunks[i][1][window.__MMS_BUILD__.risk_module];
        if (factory) {
          var m = {}; factory(m, {});
          return new m.exports({ serverTime: serverTime() }).messagePack();
        }
      }
    } catch (e) { /* as the live plugin: the request goes with the error marker */ }
    return "getRisckInfoError";
  }
  function api(path, body, token) {
    var fresh = !timeBase || Date.now() - timeBase.local > 10000 ? syncTime() : Promise.resolve();
    return fresh.then(function () { return send(path, body, token); });
  }
  function send(path, body, token) {
    var rckk = (document.cookie.match(/(?:^|; )rckk=([^;]*)/) || [])[1];
    var headers = { "Anti-Content": antiContent() };
    if (rckk) { headers.etag = decodeURIComponent(rckk); }  // the page's own request library sends it (§4)
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    token = token || window.__VerifyAuthToken__;  // added to every request after a passed captcha (§F)
    if (token) { headers.verifyauthtoken = token; }
    return fetch(path, {
      method: "POST", credentials: "same-origin", headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return { success: false, errorCode: r.status, errorMsg: "系统繁忙，请稍后再试" }; })
        .then(function (d) { return { d: d, r: r }; });
    }).then(function (x) {
      var d = x.d, r = x.r;
      if (d.success) { return d.result; }
      if ((d.errorCode === 43001 && r.headers.get("checklogin") === "false") ||
          (d.errorCode === 40001 && (r.status === 429 || r.status === 403))) {
        location.href = "/login?redirectUrl=" + encodeURIComponent(location.href);
      } else if (d.errorCode === 54001 && d.result && d.result.verifyAuthToken) {
        return floatingCaptcha(d.result.verifyAuthToken).then(function (t) { return api(path, body, t); });
      } else { toast(d.errorMsg || "系统繁忙，请稍后再试"); }
      throw new Error(d.errorMsg || "request failed");
    });
  }
  function dhms(s) {
    s = Math.max(0, Math.floor(s));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return d + "天" + h + "时" + m + "分" + (s % 60) + "秒";
  }
  function beijing(sec) { return new Date((sec + 8 * 3600) * 1000).toISOString().slice(0, 19).replace("T", " "); }
  function yuan(fen) { return "¥" + (fen / 100).toFixed(2); }
  function elapsed() { return Math.floor((performance.now() - st.fetchedAt) / 1000); }
  // <div class=expiration>（<Ellipsis><span class=time>…</span>{expireActionDesc without ${time}}</Ellipsis>）</div>
  function countdown(row) {
    var desc = row.expireActionDesc || "";
    if (desc === "") { return null; }
    var left = row.expireRemainTime > 0 ? row.expireRemainTime - elapsed() : 0;
    // Assumption: urgentType 1-3 adds the `expired` module class (red); the markup of 「（已逾期）」 is unknown.
    var red = [1, 2, 3].indexOf(row.urgentType) >= 0 || left <= 0;
    var box = el("div", C("table-item-header_expiration") + (red ? " " + C("table-item-header_expired") : ""));
    if (left <= 0) { box.textContent = "（已逾期）"; return box; }
    box.appendChild(document.createTextNode("（"));
    var ell = el("span", "ELP_ellipsis_" + V);
    ell.appendChild(el("span", C("table-item-header_time"), dhms(left)));
    ell.appendChild(document.createTextNode(desc.replace("${time}", "")));
    box.appendChild(ell);
    box.appendChild(document.createTextNode("）"));
    return box;
  }

  function renderBoard(root) {
    var board = el("div", C("aftersale-data_board"), null, { "data-section": "aftersale-data" });
    board.appendChild(el("strong", null, "售后数据 "));
    B.headerCounters.forEach(function (v) {
      var item = el("div", C("aftersale-data_item"));
      item.appendChild(el("span", C("aftersale-data_label"), v[0]));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("span", C("aftersale-data_value"), st.header[v[1]] || 0));
      item.appendChild(document.createTextNode("单"));
      board.appendChild(item);
    });
    root.appendChild(board);
  }
  function pick(f) {
    // A card click: {pageNumber:1, searchText:undefined, quickSearchType:N} plus the card's sort flag (§A)
    var b = {};
    Object.keys(st.body).forEach(function (k) { if (k !== "orderByExpireTimeAsc") { b[k] = st.body[k]; } });
    b.pageNumber = 1; b.searchText = undefined; b.quickSearchType = f.code;
    if (f.expireSort) { b.orderByExpireTimeAsc = true; }
    st.body = b;
    load();
  }
  function renderCards(root) {
    var wrap = el("div", C("quick-filter_wrap"));
    B.filters.forEach(function (f) {
      var checked = st.body.quickSearchType === f.code ? " CAD_beastCardChecked_" + V : "";
      var card = el("div", "CAD_card_" + V + checked, null, { "data-testid": "beast-core-card" });
      card.appendChild(el("span", C("MmsUiQuickFilter___label"), f.label));
      card.appendChild(el("span", C("MmsUiQuickFilter___count"), st.counts[f.countKey] || 0));
      card.addEventListener("click", function () { pick(f); });
      wrap.appendChild(card);
    });
    root.appendChild(wrap);
  }
  function renderRow(row) {
    var item = el("div", C("after-sales-table_order_item"));
    var head = el("div", C("table-item-header_item_header"));
    head.appendChild(el("label", C("after-sales-table_checkbox_wrap"), null, { "data-checked": "false" }));
    head.appendChild(el("span", C("table-item-header_label"), "订单编号："));
    head.appendChild(el("span", C("table-item-header_sn"), row.orderSn));
    // Assumption: the apply time is a span of module class apply_time inside apply_timestamp
    var apply = el("div", C("table-item-header_apply_timestamp"), "申请时间：");
    apply.appendChild(el("span", C("table-item-header_apply_time"), beijing(row.createdAt)));
    head.appendChild(apply);
    var cd = countdown(row);
    if (cd) { head.appendChild(cd); }
    item.appendChild(head);
    var body = el("div", C("after-sales-table_body"));
    var cells = [];
    for (var i = 0; i < 8; i++) { cells.push(el("div", C("after-sales-table_item_cell"))); body.appendChild(cells[i]); }
    var info = el("div", C("table-item-order-info_wrap"));
    info.appendChild(el("div", C("table-item-order-info_main"), row.goodsName));
    info.appendChild(el("div", C("table-item-order-info_sub"), row.goodsSpec + " ×" + row.goodsNumber));
    cells[0].appendChild(info);
    cells[1].appendChild(el("div", C("table-item-amount_received"), "实收：" + yuan(row.receiveAmount)));
    cells[1].appendChild(el("div", C("table-item-amount_refund"), "退款：" + yuan(row.refundAmount)));
    cells[2].textContent = row.sellerAfterSalesShippingStatusDesc;
    cells[3].textContent = TYPE_NAMES[row.afterSalesType] || "售后";
    cells[4].textContent = row.afterSalesTitle;
    cells[5].textContent = row.rejectChatTipDesc || "-";
    cells[6].textContent = row.afterSalesReasonDesc;
    var link = el("a", null, "查看详情", {
      href: "/aftersales-ssr/detail?id=" + encodeURIComponent(row.id) + "&orderSn=" + encodeURIComponent(row.orderSn),
      target: "_blank"
    });
    cells[7].appendChild(link);
    item.appendChild(body);
    return item;
  }
  function goPage(p) { st.body.pageNumber = p; load(); }
  function renderPager(root) {
    var size = st.body.pageSize, cur = st.body.pageNumber, pages = Math.max(1, Math.ceil(st.total / size));
    var ul = el("ul", "PGT_outerWrapper_" + J, null,
      { "data-testid": "beast-core-pagination", "data-status": "beast-core-pagination-" + size + "-" + cur });
    ul.appendChild(el("li", "PGT_totalText_" + J, "共有 " + st.total + " 条"));
    function li(testid, cls, text, target, disabled) {
      var n = el("li", cls + (disabled ? " PGT_disabled_" + J : ""), text, { "data-testid": testid });
      if (!disabled) { n.addEventListener("click", function () { goPage(target); }); }
      ul.appendChild(n);
      return n;
    }
    li("beast-core-pagination-prev", "PGT_prev_" + J, "上一页", cur - 1, cur <= 1);
    var first = Math.max(1, Math.min(cur - 3, pages - 6)), last = Math.min(pages, first + 6);
    for (var p = first; p <= last; p++) {
      li("beast-core-pagination-item", "PGT_pagerItem_" + J + (p === cur ? " PGT_pagerItemActive_" + J : ""), p, p, false);
    }
    li("beast-core-pagination-next", "PGT_next_" + J, "下一页", cur + 1, cur >= pages);
    if (B.pageSizeChanger) {
      // beast-core Select: a custom dropdown, not <select> (§G, high); its inner markup is assumed
      var sizeLi = el("li", "PGT_sizeChanger_" + J);
      var sel = el("div", "ST_outerWrapper_" + J, null, { "data-testid": "beast-core-select" });
      var headEl = el("div", "ST_head_" + J, null, { "data-testid": "beast-core-select-header" });
      headEl.appendChild(el("input", "IPT_input_" + J, null, { readonly: "readonly", value: size + " 条/页" }));
      sel.appendChild(headEl);
      sel.addEventListener("click", function (ev) { ev.stopPropagation(); st.sizeOpen = !st.sizeOpen; render(); });
      sizeLi.appendChild(sel);
      if (st.sizeOpen) {
        var dd = el("ul", "ST_dropdown_" + J, null, { "data-testid": "beast-core-select-dropdown" });
        [10, 20, 50, 100].forEach(function (s) {
          var o = el("li", "ST_option_" + J + (s === size ? " ST_optionActive_" + J : ""), s + " 条/页",
            { "data-testid": "beast-core-select-option" });
          o.addEventListener("click", function (ev) {
            ev.stopPropagation(); st.sizeOpen = false; st.body.pageSize = s; st.body.pageNumber = 1; load();
          });
          dd.appendChild(o);
        });
        sizeLi.appendChild(dd);
      }
      ul.appendChild(sizeLi);
    }
    root.appendChild(ul);
  }
  function render() {
    var root = document.createDocumentFragment();
    renderBoard(root);
    renderCards(root);
    var table = el("div", C("after-sales-table_table"));
    st.rows.forEach(function (r) { table.appendChild(renderRow(r)); });
    if (!st.rows.length) { table.appendChild(el("div", C("empty_tip"), "暂无数据")); }
    root.appendChild(table);
    renderPager(root);
    app.textContent = "";
    app.appendChild(root);
    app.dataset.loading = "false";
  }
  function tick() {
    var nodes = app.querySelectorAll("[class*='after-sales-table_order_item']");
    nodes.forEach(function (node, i) {
      var row = st.rows[i], old = node.querySelector("[class*='table-item-header_expiration']");
      var cd = row && countdown(row);
      if (old && cd) { old.replaceWith(cd); }
    });
  }
  function load() {
    app.dataset.loading = "true";
    var body = st.body;
    return api("/mercury/mms/afterSales/queryCount").then(function (counts) {
      st.counts = counts;
      return api("/mercury/mms/afterSales/queryList", body);
    }).then(function (res) {
      st.total = res.total; st.rows = res.list; st.fetchedAt = performance.now();
      render();
    }).catch(function () { app.dataset.loading = "false"; });
  }
  document.addEventListener("click", function () { if (st.sizeOpen) { st.sizeOpen = false; render(); } });
  setInterval(tick, 1000);
  // the board re-renders once the first list is there (until then the page shows 加载中…)
  api("/mercury/merchant/afterSales/queryWaitHandleCount", {}).then(function (h) {
    st.header = h; if (st.fetchedAt) { render(); }
  }).catch(function () {});
  load().then(function () {
    // gray key front_end_quick_filter_sort (§A): with no complaint warnings but items waiting, go to 待商家处理
    if (B.quickFilterSort && !fromUrl && !st.counts.complainWarning && st.counts.waitSellerHandle > 0) {
      var f = B.filters.filter(function (x) { return x.code === B.waitSellerCode; })[0];
      if (f) { pick(f); }
    }
  });
})();
