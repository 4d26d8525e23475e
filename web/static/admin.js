// Progressive enhancement only: every page works without this script.
// A confirmed commit's countdown ticks down once a second.
(function () {
  var el = document.getElementById("countdown");
  if (!el) return;
  var left = parseInt(el.getAttribute("data-seconds"), 10);
  if (isNaN(left)) return;
  var tick = function () {
    if (left <= 0) { el.textContent = "0"; location.reload(); return; }
    el.textContent = String(left);
    left -= 1;
    setTimeout(tick, 1000);
  };
  tick();
})();
