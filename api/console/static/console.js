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
