// Runway web consoles: local and relative times, confirmations. Pages read
// without this script; it only makes them friendlier.
(function () {
  "use strict";
  var units = [["d", 86400000], ["h", 3600000], ["min", 60000], ["s", 1000]];
  function ago(ms) {
    var d = Date.now() - ms, abs = Math.abs(d);
    if (abs < 1000) return "just now";
    for (var i = 0; i < units.length; i++) {
      if (abs >= units[i][1] || i === units.length - 1) {
        var n = Math.floor(abs / units[i][1]) + " " + units[i][0];
        return d >= 0 ? n + " ago" : "in " + n;
      }
    }
  }
  function render(root) {
    var nodes = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i], ms = Date.parse(el.getAttribute("datetime"));
      if (isNaN(ms)) continue;
      var local = new Date(ms).toLocaleString();
      el.title = local;
      el.textContent = el.getAttribute("data-style") === "relative" ? ago(ms) : local;
    }
  }
  document.addEventListener("DOMContentLoaded", function () { render(document); });
  document.addEventListener("htmx:afterSwap", function (e) { render(e.target); });
  setInterval(function () { render(document); }, 15000);
  // Forms whose button carries data-confirm ask first (abort, undeploy, disable).
  document.addEventListener("submit", function (e) {
    var b = e.submitter;
    if (b && b.hasAttribute("data-confirm") && !window.confirm(b.getAttribute("data-confirm"))) {
      e.preventDefault();
    }
  });
})();
