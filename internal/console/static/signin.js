// Sign-in for the console: POST /auth/session with the token in the
// Authorization header (a plain form cannot set headers), then go back to
// the page that asked. Plain script, no framework.
"use strict";
(function () {
  var form = document.getElementById("signin");
  if (!form) return;
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var out = document.getElementById("signin-error");
    var token = document.getElementById("token").value.trim();
    var who = document.getElementById("authenticator").value;
    fetch(form.getAttribute("action") + "?authenticator=" + encodeURIComponent(who), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Authorization": "Bearer " + token }
    }).then(function (r) {
      if (r.ok) {
        window.location.assign(form.getAttribute("data-next") || "./");
        return;
      }
      return r.json().then(function (e) {
        out.textContent = (e && (e.error_message || e.error_description)) || ("sign-in failed: " + r.status);
        out.hidden = false;
      });
    }).catch(function (e) {
      out.textContent = "sign-in failed: " + e;
      out.hidden = false;
    });
  });
})();
