// Checkout page behaviour: one submission per click, a live countdown, and, on the embedded page,
// the outcome told to the parent window (only to the merchant's origin).
(function () {
  "use strict";
  var form = document.querySelector("form.payment");
  if (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button.pay");
      if (button) { button.disabled = true; button.textContent = "Processing…"; }
    });
  }
  var timer = document.querySelector("[data-expires-at]");
  if (timer) {
    var end = Date.parse(timer.getAttribute("data-expires-at"));
    var tick = function () {
      var left = Math.max(0, Math.floor((end - Date.now()) / 1000));
      var text = left > 0 ? "Expires in " + Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0") : "Expired";
      timer.textContent = text;
      if (left === 0) { window.clearInterval(handle); window.location.reload(); }
    };
    var handle = window.setInterval(tick, 1000);
    tick();
  }
  var outcome = document.querySelector("[data-outcome]");
  if (outcome && window.parent !== window) {
    var message = {
      type: "fanfare.checkout." + outcome.getAttribute("data-outcome"),
      orderId: outcome.getAttribute("data-order-id")
    };
    var redirect = outcome.getAttribute("data-redirect");
    if (redirect) { message.redirectUrl = redirect; }
    window.parent.postMessage(message, outcome.getAttribute("data-parent-origin"));
  }
})();
