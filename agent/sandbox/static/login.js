// Sandbox login page: QR tab first, 「账号登录」 form, SMS step, slider captcha modal.
(function () {
  "use strict";
  var $ = function (s) { return document.querySelector(s); };
  var params = new URLSearchParams(location.search);
  var redirect = params.get("redirectUrl") || "/home";
  var qrTimer = null, captchaTimer = null;

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
      t.classList.toggle("active", t.dataset.tab === tabName);
    });
    document.querySelectorAll("[data-section]").forEach(function (s) {
      s.classList.toggle("hidden", s.dataset.section !== tabName);
    });
    if (tabName === "qrcode") { startQr(); } else if (qrTimer) { clearInterval(qrTimer); qrTimer = null; }
  }
  document.querySelectorAll(".login-tab [data-tab]").forEach(function (t) {
    t.addEventListener("click", function () { show(t.dataset.tab); });
  });

  function startQr() {
    if (qrTimer) { clearInterval(qrTimer); }
    post("/janus/api/qrcode/create").then(function (res) {
      var token = res.result.token, img = $(".qr-code");
      img.dataset.token = token;
      img.src = "/janus/api/qrcode/image?token=" + encodeURIComponent(token);
      qrTimer = setInterval(function () {
        fetch("/janus/api/qrcode/status?token=" + encodeURIComponent(token), { credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (st) {
            var s = st.result && st.result.status;
            if (s === "confirmed") { clearInterval(qrTimer); go(); }
            else if (s === "expired") { startQr(); }
          });
      }, 1000);
    });
  }

  var err = $(".login-error");
  function submit() {
    err.textContent = "";
    var body = { username: $("#usernameId").value, password: $("#passwordId").value };
    if (!$(".sms-section").classList.contains("hidden")) { body.verificationCode = $(".sms-section input").value; }
    post("/janus/api/auth", body).then(function (res) {
      if (res.success) { go(); return; }
      var r = res.result || {};
      if (r.needSms) { $(".sms-section").classList.remove("hidden"); $(".login-submit").classList.add("hidden"); }
      if (r.captchaTicket) { openCaptcha(r.captchaTicket); }
      err.textContent = res.errorMsg || "登录失败，请稍后再试";
    });
  }
  function openCaptcha(ticket) {
    $(".captcha-modal").classList.remove("hidden");
    if (captchaTimer) { clearInterval(captchaTimer); }
    // A human drags the slider; in the sandbox the control API marks the puzzle solved.
    captchaTimer = setInterval(function () {
      fetch("/janus/api/captcha/status?ticket=" + encodeURIComponent(ticket), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (st) {
          if (st.result && st.result.passed) {
            clearInterval(captchaTimer); captchaTimer = null;
            $(".captcha-modal").classList.add("hidden");
            submit();
          }
        });
    }, 1000);
  }
  $(".login-submit").addEventListener("click", submit);
  $(".sms-confirm").addEventListener("click", submit);
  $(".sms-send").addEventListener("click", function () {
    var btn = $(".sms-send");
    post("/janus/api/user/getLoginVerificationCode", { username: $("#usernameId").value }).then(function (res) {
      err.textContent = res.success ? "" : (res.errorMsg || "发送失败");
      if (res.success) { btn.textContent = "验证码已发送"; }
    });
  });
  show("qrcode");
})();
