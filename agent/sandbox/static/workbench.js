// Sandbox after-sales workbench (售后工作台): a small single-page app over queryCount/queryList.
(function () {
  "use strict";
  var B = window.__MMS_BUILD__, C = function (n) { return B.classes[n]; }, V = B.beast;
  var app = document.getElementById("aftersale-app");
  var st = { code: B.allCode, page: 1, size: 10, total: 0, rows: [], fetchedAt: 0, counts: {} };

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
  function api(path, body) {
    return fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return { success: false, errorCode: r.status, errorMsg: "系统繁忙，请稍后再试" }; });
    }).then(function (d) {
      if (d.success) { return d.result; }
      if (d.errorCode === 43001) {
        location.href = "/login?redirectUrl=" + encodeURIComponent(location.href);
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
  function countdown(row) {
    if (row.expireRemainTime !== null && row.expireRemainTime !== undefined) {
      var noTrack = (row.expireActionDesc || "").indexOf("物流无退回轨迹") >= 0;
      return "（" + dhms(row.expireRemainTime - elapsed()) + (noTrack ? "物流无退回轨迹" : "未处理") + "，系统将自动退款）";
    }
    if (row.proofExpireRemainTime !== null && row.proofExpireRemainTime !== undefined) {
      return "（" + dhms(row.proofExpireRemainTime - elapsed()) + "内未举证，平台将判定商家责任）";
    }
    return null;
  }

  function renderBoard(root) {
    var board = el("div", C("aftersale-data_board"), null, { "data-section": "aftersale-data" });
    board.appendChild(el("strong", null, "售后数据 "));
    var c = st.counts;
    var values = [["24小时内将逾期订单数", c.expireIn24HoursWaitHandle], ["24小时内待商家举证", c.expireIn24HoursWaitProof],
      ["24小时内平台同意退款", B.counters["24小时内平台同意退款"]], ["24小时内将逾期工单数", B.counters["24小时内将逾期工单数"]]];
    values.forEach(function (v) {
      var item = el("div", C("aftersale-data_item"));
      item.appendChild(el("span", C("aftersale-data_label"), v[0]));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("span", C("aftersale-data_value"), v[1] || 0));
      item.appendChild(document.createTextNode("单"));
      board.appendChild(item);
    });
    root.appendChild(board);
  }
  function renderCards(root) {
    var wrap = el("div", C("quick-filter_wrap"));
    B.filters.forEach(function (f) {
      var checked = st.code === f.code ? " CAD_beastCardChecked_" + V : "";
      var card = el("div", "CAD_card_" + V + checked, null, { "data-testid": "beast-core-card" });
      card.appendChild(el("span", C("MmsUiQuickFilter___label"), f.label));
      card.appendChild(el("span", C("MmsUiQuickFilter___count"), st.counts[f.countKey] || 0));
      card.addEventListener("click", function () { st.code = f.code; st.page = 1; load(); });
      wrap.appendChild(card);
    });
    root.appendChild(wrap);
  }
  function renderRow(row) {
    var item = el("div", C("after-sales-table_order_item"), null, { "data-id": row.id });
    var head = el("div", C("table-item-header_header"));
    head.appendChild(el("label", C("after-sales-table_checkbox_wrap"), null, { "data-checked": "false" }));
    head.appendChild(el("span", C("table-item-header_label"), "订单编号："));
    head.appendChild(el("span", C("table-item-header_sn"), row.orderSn));
    var apply = el("div", C("table-item-header_apply_time"), "申请时间: ");
    apply.appendChild(el("span", null, beijing(row.createdAt)));
    head.appendChild(apply);
    var cd = countdown(row);
    if (cd) { head.appendChild(el("span", C("table-item-header_time"), cd)); }
    item.appendChild(head);
    var body = el("div", C("after-sales-table_body"));
    var cells = [];
    for (var i = 0; i < 8; i++) { cells.push(el("div", C("after-sales-table_item_cell"))); body.appendChild(cells[i]); }
    var info = el("div", C("order-info_wrap"));
    info.appendChild(el("div", C("order-info_main"), row.goodsName));
    info.appendChild(el("div", C("order-info_sub"), row.goodsSpec + " ×" + row.goodsNumber));
    cells[0].appendChild(info);
    cells[1].appendChild(el("div", C("amount_dotted"), "实收：" + yuan(row.orderAmount)));
    cells[1].appendChild(el("div", C("amount_refund"), "退款：" + yuan(row.refundAmount)));
    cells[2].textContent = row.sellerAfterSalesShippingStatusDesc;
    cells[3].textContent = row.afterSalesTypeName;
    cells[4].textContent = row.afterSalesTitle;
    if (row.proofStatus) { cells[4].appendChild(el("div", null, row.proofStatus)); }
    cells[5].textContent = row.mallRemark || "-";
    cells[6].textContent = row.afterSalesReasonDesc;
    var link = el("a", null, "查看详情", {
      href: "/aftersales-ssr/detail?id=" + encodeURIComponent(row.id) + "&orderSn=" + encodeURIComponent(row.orderSn),
      target: "_blank"
    });
    cells[7].appendChild(link);
    item.appendChild(body);
    return item;
  }
  function renderPager(root) {
    var pages = Math.max(1, Math.ceil(st.total / st.size));
    var ul = el("ul", C("pagination_wrap"), null, { "data-testid": "beast-core-pagination" });
    ul.appendChild(el("li", C("pagination_total"), "共 " + st.total + " 条"));
    function li(testid, cls, text, target, disabled) {
      var n = el("li", cls + (disabled ? " PGT_disabled_" + V : ""), text, { "data-testid": testid });
      if (!disabled) { n.addEventListener("click", function () { st.page = target; load(); }); }
      ul.appendChild(n);
      return n;
    }
    li("beast-core-pagination-prev", "PGT_prev_" + V, "上一页", st.page - 1, st.page <= 1);
    var first = Math.max(1, Math.min(st.page - 3, pages - 6)), last = Math.min(pages, first + 6);
    for (var p = first; p <= last; p++) {
      var n = li("beast-core-pagination-item", "PGT_pagerItem_" + V + (p === st.page ? " PGT_pagerItemActive_" + V : ""), p, p, false);
      if (p === st.page) { n.setAttribute("aria-current", "page"); }
    }
    li("beast-core-pagination-next", "PGT_next_" + V, "下一页", st.page + 1, st.page >= pages);
    var sizeLi = el("li", "PGT_sizeChanger_" + V);
    var sel = el("select", null, null, { "data-testid": "beast-core-pagination-size" });
    [10, 20, 50, 100].forEach(function (s) {
      var o = el("option", null, s + " 条/页", { value: s });
      if (s === st.size) { o.selected = true; }
      sel.appendChild(o);
    });
    sel.addEventListener("change", function () { st.size = parseInt(sel.value, 10); st.page = 1; load(); });
    sizeLi.appendChild(sel);
    ul.appendChild(sizeLi);
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
      var row = st.rows[i], span = node.querySelector("[class*='table-item-header_time']"), cd = row && countdown(row);
      if (span && cd) { span.textContent = cd; }
    });
  }
  function load() {
    app.dataset.loading = "true";
    var body = { pageSize: st.size, pageNumber: st.page, quickSearchType: st.code, orderByCreatedAtDesc: true,
      mallRemarkStatus: null, mallRemarkTag: null };
    return api("/mercury/mms/afterSales/queryCount", {}).then(function (counts) {
      st.counts = counts;
      return api("/mercury/mms/afterSales/queryList", body);
    }).then(function (res) {
      st.total = res.total; st.rows = res.list; st.fetchedAt = performance.now();
      render();
    }).catch(function () { app.dataset.loading = "false"; });
  }
  setInterval(tick, 1000);
  load();
})();
