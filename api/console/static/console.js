// Berth console: the small amount of progressive JavaScript (the pages work without it).
"use strict";

// Times are rendered server-side in UTC (<time datetime="...Z" title="... UTC">); here they are
// shown in the viewer's zone, UTC stays on hover (title).
function berthLocalTimes(root) {
  for (const el of (root || document).querySelectorAll("time[datetime]:not([data-local])")) {
    const when = new Date(el.getAttribute("datetime"));
    if (isNaN(when)) continue;
    el.textContent = when.toLocaleString(undefined, {
      year: "numeric", month: "short", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
    });
    el.dataset.local = "1";
  }
}

document.addEventListener("DOMContentLoaded", () => berthLocalTimes(document));
document.addEventListener("htmx:afterSwap", (e) => berthLocalTimes(e.target));

// htmx requests carry the page's CSRF token (every console POST checks it)
document.addEventListener("htmx:configRequest", (e) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) e.detail.headers["X-CSRFToken"] = meta.content;
});

// a refused action's page (400/403 with the API's message) is shown like any answer
document.addEventListener("DOMContentLoaded", () => {
  if (window.htmx) {
    htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[2345]..", swap: true },
    ];
  }
});

// Telemetry: the samples the page carries (<script type="application/json" id="chart-data">,
// [[iso time, value], ...]) drawn with the vendored uPlot; the table stays below as the
// no-JavaScript fallback.
function berthChart() {
  const el = document.getElementById("chart");
  const data = document.getElementById("chart-data");
  if (!el || !data || !window.uPlot) return;
  const points = JSON.parse(data.textContent);
  const xs = points.map((p) => Date.parse(p[0]) / 1000);
  const ys = points.map((p) => (typeof p[1] === "boolean" ? Number(p[1]) : p[1]));
  const width = Math.max(280, el.clientWidth || 600);
  const chart = new uPlot(
    {
      width: width,
      height: 240,
      series: [{}, { label: el.dataset.field, stroke: "#0b5cad", width: 2 }],
      axes: [{}, {}],
    },
    [xs, ys],
    el,
  );
  el.dataset.drawn = String(xs.length);
  window.berthChartInstance = chart;
}
document.addEventListener("DOMContentLoaded", berthChart);
