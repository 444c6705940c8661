// pdd-agent team page: countdowns tick here from each deadline; the server only says "items changed" (SSE)
// and the page refetches its list; actions go to /api/v1 with the CSRF token. Without JS the forms still work.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";

  function span(ms) {
    var m = Math.floor(Math.abs(ms) / 60000), d = Math.floor(m / 1440), h = Math.floor((m % 1440) / 60), mm = m % 60;
    if (d) return d + "天" + (h ? h + "小时" : "");
    if (h) return h + "小时" + (mm ? mm + "分" : "");
    return mm ? mm + "分" : "不到1分";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Number(el.getAttribute("data-deadline")) - now;
      el.textContent = left >= 0 ? "剩余 " + span(left) : "已超时 " + span(left);
      el.classList.toggle("soon", left < 2 * 3600e3);
      el.classList.toggle("late", left < 30 * 60e3);
    });
  }

  function busy(box) {  // someone is typing in it: do not swap it away under them
    var a = document.activeElement;
    return a && box.contains(a) && (a.tagName === "TEXTAREA" || a.tagName === "INPUT" || a.tagName === "SELECT");
  }
  var pending = false, last = 0, later = null;
  function refresh() {  // at most one refetch a second (a burst of changes costs one), none while hidden
    var wait = last + (document.getElementById("shops") ? 10000 : 1000) - Date.now();
    if (wait > 0 || document.hidden) {
      if (!later) later = setTimeout(function () { later = null; refresh(); }, Math.max(wait, 1000));
      return;
    }
    last = Date.now();
    var rows = document.getElementById("rows"), page = document.querySelector(".item-page");
    var box = rows || page;
    if (!box) { if (document.getElementById("shops")) location.reload(); return; }
    if (busy(box)) { pending = true; return; }
    var url = rows ? rows.getAttribute("data-src") : location.pathname;
    fetch(url, {credentials: "same-origin"}).then(function (r) { return r.ok ? r.text() : null; }).then(function (html) {
      if (html === null) return;
      if (rows) { rows.innerHTML = html; }
      else {
        var doc = new DOMParser().parseFromString(html, "text/html"), fresh = doc.querySelector(".item-page");
        if (fresh) page.replaceWith(fresh);
      }
      tick();
    });
  }
  document.addEventListener("focusout", function () { if (pending) { pending = false; setTimeout(refresh, 50); } });

  var stream = null;
  function listen() {
    if (!window.EventSource) return;
    stream = new EventSource("/events");
    stream.addEventListener("items", refresh);
    stream.addEventListener("shops", function () { if (document.getElementById("shops")) refresh(); });
  }
  // the fallback: poll every 30 s while the event stream is not open (a proxy that buffers, a dropped link)
  setInterval(function () { if (!stream || stream.readyState !== 1) refresh(); }, 30000);

  function toast(text) {
    var t = document.createElement("p");
    t.className = "msg toast"; t.textContent = text;
    document.body.appendChild(t);
    setTimeout(function () { t.remove(); }, 6000);
  }
  document.addEventListener("submit", function (ev) {
    var form = ev.target, action = form.getAttribute("data-action");
    var holder = form.closest("[data-key]");
    if (!action || !holder || !window.fetch) return;
    ev.preventDefault();
    var body = {version: Number(holder.getAttribute("data-version"))};
    var member = form.querySelector('[name="member"]'), text = form.querySelector('[name="text"]');
    if (member) body.member = member.value;
    if (text) body.text = text.value;
    if (action === "note") delete body.version;
    fetch("/api/v1/items/" + encodeURIComponent(holder.getAttribute("data-key")) + "/" + action, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}
    }).then(function (r) {
      return r.json().then(function (d) {
        if (r.status === 409) toast("该售后单刚被别人更新，已显示最新状态");
        else if (!r.ok) toast(d.error || "操作失败");
        else if (text) text.value = "";
        if (text && document.activeElement === text) text.blur();
        refresh();
      });
    }).catch(function () { toast("网络错误，请重试"); });
  });

  tick();
  setInterval(tick, 1000);
  listen();
})();
