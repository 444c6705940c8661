// Sandbox login page, built like PDD's login bundle v20260122 (mms-live-2026.md §H): the QR tab first with the
// QR drawn on a <canvas> from /janus/api/scan/login/qrcode and polled every 2 s; 「账号登录」 with
// queryPasswordEncrypt + auth, the SMS step, the picture and slider captchas, risk and blocked-login texts.
(function () {
  "use strict";
  var $ = function (s) { return document.querySelector(s); };
  var params = new URLSearchParams(location.search);
  var redirect = params.get("redirectUrl") || "/home";
  var qrTimer = null, captchaTimer = null, smsTimer = null;
  var fingerprint = Math.random().toString(16).slice(2);
  var QR_TEXT = { 2: "扫码成功 请在手机上确认登录", 5: "系统繁忙，请通过账密登录", "-2": "已取消" };

  function safeRedirect(u) {
    try { var x = new URL(u, location.origin); return x.origin === location.origin ? x.href : "/home"; }
    catch (e) { return "/home"; }
  }
  function go() { location.href = safeRedirect(redirect); }
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {})
    }).then(function (r) { return r.json(); });
  }
  function show(tabName) {
    document.querySelectorAll(".login-tab [data-tab]").forEach(function (t) {
      t.classList.toggle("checked", t.dataset.tab === tabName);
    });
    document.querySelectorAll("[data-section]").forEach(function (s) {
      s.classList.toggle("hidden", s.dataset.section !== tabName);
    });
    if (tabName === "qrcode") { startQr(); } else if (qrTimer) { clearInterval(qrTimer); qrTimer = null; }
  }
  document.querySelectorAll(".login-tab [data-tab]").forEach(function (t) {
    t.addEventListener("click", function () { show(t.dataset.tab); });
  });

  // ---- QR (canvas) ----
  function draw(uri) {
    // the live page draws with qrcode.react; the sandbox asks itself for the modules (sandbox-only helper)
    return fetch("/static/qrmatrix?data=" + encodeURIComponent(uri)).then(function (r) { return r.json(); })
      .then(function (m) {
        var cv = $(".qr-code canvas"), ctx = cv.getContext("2d"), n = m.rows.length, q = 2;
        var cell = Math.floor(cv.width / (n + 2 * q));
        ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, cv.width, cv.height);
        ctx.fillStyle = "#000";
        m.rows.forEach(function (row, y) {
          for (var x = 0; x < row.length; x++) {
            if (row[x] === "1") { ctx.fillRect((x + q) * cell, (y + q) * cell, cell, cell); }
          }
        });
        cv.dataset.drawn = "true";
      });
  }
  function mask(text, refresh) {
    $(".qr-mask").classList.remove("hidden");
    $(".qr-mask-text").textContent = text;
    $(".qr-refresh").classList.toggle("hidden", !refresh);
  }
  function startQr() {
    if (qrTimer) { clearInterval(qrTimer); }
    $(".qr-mask").classList.add("hidden");
    $(".qr-status").textContent = "";
    post("/janus/api/scan/login/qrcode", { fingerprint: fingerprint }).then(function (res) {
      var uri = res.result.uri, data = new URL(uri).searchParams.get("data");
      draw(uri);
      qrTimer = setInterval(function () {
        post("/janus/api/scan/login/query", { data: data, fingerprint: fingerprint }).then(function (d) {
          if (!d.success) { clearInterval(qrTimer); mask(d.errorMsg || "登录失败", true); return; }
          var s = d.result.status;
          if (s === 3) { clearInterval(qrTimer); go(); return; }
          if (s === -1) { clearInterval(qrTimer); mask("二维码已失效", true); return; }
          if (s === -2) { clearInterval(qrTimer); mask("已取消", true); return; }
          $(".qr-status").textContent = QR_TEXT[s] || "";
        });
      }, 2000);
    });
  }
  $(".qr-refresh").addEventListener("click", startQr);

  // ---- password ----
  var err = $(".info-error-text");
  var sms = $(".sms-verify"), picture = $(".picture-captcha");
  function submit() {
    err.textContent = "";
    $(".msg-input-error").textContent = "";
    fetch("/janus/api/queryPasswordEncrypt", { credentials: "same-origin" }).then(function (r) { return r.json(); })
      .then(function (k) {
        var nonce = k.result.passwordEncrypt;
        var body = {
          username: $("#usernameId").value,
          password: btoa(unescape(encodeURIComponent(nonce + ":" + $("#passwordId").value))),
          passwordEncrypt: nonce, verificationCode: picture.querySelector("input").value,
          mobileVerifyCode: sms.classList.contains("hidden") ? "" : sms.querySelector("input").value,
          sign: "", touchevent: {}, fingerprint: fingerprint, captchaType: 0
        };
        return post("/janus/api/auth", body);
      }).then(function (res) {
        if (res.success) { go(); return; }
        var r = res.result || {};
        if (r.needSms) {
          var wasOpen = !sms.classList.contains("hidden");
          sms.classList.remove("hidden");
          $(".password-section").classList.add("hidden");
          if (wasOpen) { $(".msg-input-error").textContent = res.errorMsg || "验证码错误"; }
          return;
        }
        if (res.errorCode === 2004) { openPicture(); return; }
        if (r.captchaTicket) { openCaptcha(r.captchaTicket); }
        if (res.errorCode === 2000016 || res.errorCode === 2000017) {
          var risk = $(".account-risk");
          risk.textContent = res.errorMsg; risk.classList.remove("hidden");
          return;
        }
        err.textContent = res.errorMsg || "登录失败，请稍后再试";
      });
  }
  function openPicture() {
    picture.classList.remove("hidden");
    picture.querySelector("img").src = "/janus/api/getCaptchaCode?t=" + Date.now();
    err.textContent = "请先输入图形验证码";
    // a human reads the picture; in the sandbox the control API marks it solved
    pollPassed("picture", function () { picture.classList.add("hidden"); picture.querySelector("input").value = "ok"; submit(); });
  }
  function openCaptcha(ticket) {
    $(".captcha-modal").classList.remove("hidden");
    pollPassed(ticket, function () { $(".captcha-modal").classList.add("hidden"); submit(); });
  }
  function pollPassed(ticket, done) {
    if (captchaTimer) { clearInterval(captchaTimer); }
    captchaTimer = setInterval(function () {
      fetch("/janus/api/captcha/status?ticket=" + encodeURIComponent(ticket), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (st) {
          if (st.result && st.result.passed) { clearInterval(captchaTimer); captchaTimer = null; done(); }
        });
    }, 1000);
  }
  $(".login-submit").addEventListener("click", submit);
  $(".sms-confirm").addEventListener("click", submit);
  $(".sms-send").addEventListener("click", function () {
    var btn = $(".sms-send");
    if (smsTimer) { return; }
    post("/janus/api/mobile/sendVerificationCode", { type: 117, username: $("#usernameId").value }).then(function (res) {
      $(".msg-input-error").textContent = res.success ? "" : (res.errorMsg || "发送失败");
      if (!res.success) { return; }
      var left = 60;
      btn.textContent = "还剩" + left + "秒";
      smsTimer = setInterval(function () {
        left -= 1;
        if (left <= 0) { clearInterval(smsTimer); smsTimer = null; btn.textContent = "获取验证码"; }
        else { btn.textContent = "还剩" + left + "秒"; }
      }, 1000);
    });
  });
  show("qrcode");
})();
