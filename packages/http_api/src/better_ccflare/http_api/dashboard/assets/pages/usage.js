// Usage history: each account's usage windows over time, from /api/usage-history (the usage
// poller's readings), one chart per account with a line per window.

import { api } from "../api.js";
import { chart, seriesColor } from "../charts.js";
import { $, fill, h, toast } from "../dom.js";
import { PERIODS, fmtDateTime, fmtRelative, typeLabelsOf, windowLabel } from "../format.js";

const RANGE_KEY = "better-ccflare.usageRange";
let accounts = [];
let typeLabels = new Map(); // from /api/providers, as on the accounts page
let drawn = []; // chart handles of the panels on the page

/** The points of one account, grouped into one line per window, oldest first. */
function lines(points) {
  const byWindow = new Map();
  for (const p of points) {
    if (!byWindow.has(p.window)) byWindow.set(p.window, []);
    byWindow.get(p.window).push({ x: p.timestamp, y: p.utilization });
  }
  return [...byWindow.entries()];
}

function timeTick(value, span) {
  const d = new Date(value);
  return span > 2 * 86400000
    ? d.toLocaleDateString(undefined, { month: "short", day: "numeric" })
    : d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

/** The account's panel, and a function that draws its chart once the panel is on the page. */
function accountPanel(account, points) {
  const windows = lines(points);
  const head = h("div", { class: "panel-head" },
    h("h2", {}, account.name, " ", h("span", { class: "badge accent" }, typeLabels.get(account.provider) ?? account.provider)),
    h("span", { class: "muted small" }, points.length ? `${points.length} readings` : ""));
  const now = h("div", { class: "usage-now" }, (account.usageData ?? []).map((w) =>
    h("span", { dataset: { window: w.key } }, `${windowLabel(w.key)}: `, h("strong", {}, `${Math.round(w.utilization)}%`),
      w.resetsAt ? ` · resets ${fmtRelative(w.resetsAt)}` : "")));
  const panel = h("section", { class: "panel", dataset: { account: account.name } }, head);
  if (!windows.length) {
    panel.append(h("p", { class: "muted" }, "No usage readings in this period. Subscription accounts (Claude, z.ai) and providers that report usage are read every few minutes."));
    return { panel, draw: () => null };
  }
  const canvas = h("canvas", { role: "img", "aria-label": `Usage windows of ${account.name} over time` });
  panel.append(h("div", { class: "chart" }, canvas), now);
  const xs = points.map((p) => p.timestamp);
  const span = Math.max(...xs) - Math.min(...xs);
  const draw = () => chart(canvas, () => ({
    type: "line",
    data: {
      datasets: windows.map(([key, data], i) => ({
        label: windowLabel(key), data, borderColor: seriesColor(i), backgroundColor: seriesColor(i),
        pointRadius: data.length > 40 ? 0 : 2, borderWidth: 2, stepped: false,
      })),
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false, parsing: true,
      interaction: { mode: "nearest", intersect: false },
      plugins: {
        legend: { position: "bottom", align: "start" },
        tooltip: { callbacks: { title: (items) => fmtDateTime(items[0].parsed.x), label: (c) => ` ${c.dataset.label}: ${Math.round(c.parsed.y)}%` } },
      },
      scales: {
        x: { type: "linear", ticks: { maxTicksLimit: 6, callback: (v) => timeTick(v, span) }, grid: { display: false } },
        y: { min: 0, max: 100, ticks: { callback: (v) => `${v}%`, maxTicksLimit: 6 } },
      },
    },
  }));
  return { panel, draw };
}

async function refresh() {
  const range = $("#usage-range").value;
  const chosen = $("#usage-account").value;
  const shown = chosen ? accounts.filter((a) => a.id === chosen) : accounts;
  const box = $("#usage-charts");
  if (!shown.length) {
    fill(box, h("div", { class: "panel empty-state" }, h("h2", {}, "No accounts yet"),
      h("p", {}, "Add an account on the Accounts page; its usage windows appear here once they are read.")));
    return;
  }
  const histories = await Promise.all(shown.map((a) =>
    api(`/api/usage-history?account=${encodeURIComponent(a.id)}&range=${encodeURIComponent(range)}`)));
  // Accounts with readings first, so the charts lead.
  const order = shown.map((a, i) => [a, histories[i]]).sort((x, y) => Number(!x[1].length) - Number(!y[1].length));
  const panels = order.map(([a, points]) => accountPanel(a, points));
  for (const handle of drawn) handle.destroy();
  fill(box, panels.map((p) => p.panel));
  drawn = panels.map((p) => p.draw()).filter(Boolean);
}

export async function start() {
  const [list, { providers }] = await Promise.all([api("/api/accounts"), api("/api/providers")]);
  accounts = list;
  typeLabels = typeLabelsOf(providers);
  accounts.sort((x, y) => x.priority - y.priority || x.name.localeCompare(y.name));
  const select = $("#usage-account");
  fill(select, h("option", { value: "" }, "All accounts"), accounts.map((a) => h("option", { value: a.id }, a.name)));
  const params = new URLSearchParams(location.search);
  if (params.get("account")) select.value = params.get("account");
  const range = $("#usage-range");
  const remembered = localStorage.getItem(RANGE_KEY);
  if (PERIODS.some(([value]) => value === remembered)) range.value = remembered;
  const update = () => {
    const query = select.value ? `?account=${encodeURIComponent(select.value)}` : "";
    history.replaceState(null, "", `${location.pathname}${query}`);
    localStorage.setItem(RANGE_KEY, range.value);
    refresh().catch((error) => toast(error.message, "error"));
  };
  select.addEventListener("change", update);
  range.addEventListener("change", update);
  await refresh();
  document.body.dataset.ready = "true";
}
