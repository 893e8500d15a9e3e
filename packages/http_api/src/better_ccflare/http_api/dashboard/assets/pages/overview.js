// Overview: one period for everything traffic-related (the cards, charts, per-account and
// per-model tables from /api/analytics, recent errors from /api/stats), and the pool right now
// from /api/accounts.

import { api, post } from "../api.js";
import { startCapacity } from "../capacity.js";
import { BUCKET_MS, bucketGrid, bucketLabels, chart, fade, onGrid, seriesColor, timeOptions } from "../charts.js";
import { $, $$, emptyRow, fill, h, toast } from "../dom.js";
import { accountLabel, fmtCount, fmtInt, fmtMs, fmtPct, fmtRate, fmtRelative, fmtUnpriced, fmtUsd } from "../format.js";

const REFRESH_MS = 15000;

const PERIOD_KEY = "better-ccflare.overviewPeriod";
const PERIOD_HOURS = { "1h": 1, "6h": 6, "24h": 24, "7d": 168, "30d": 720 };

const STAT_FORMATS = {
  requests: fmtInt,
  successRate: fmtPct,
  avgResponseTime: fmtMs,
  totalTokens: fmtCount,
  totalCostUsd: fmtUsd,
  avgTokensPerSecond: fmtRate,
};

/** Exported for the browser tests: the text a stat card shows for an API value. */
export function formatStat(name, value) {
  return STAT_FORMATS[name](value);
}

function showStats(analytics, stats, period) {
  const totals = analytics.totals;
  for (const el of $$("[data-stat]")) {
    const name = el.dataset.stat;
    el.dataset.value = String(totals[name]);
    el.textContent = formatStat(name, totals[name]);
  }
  $("[data-stat-sub=activeAccounts]").textContent =
    `${fmtInt(totals.activeAccounts)} active account${totals.activeAccounts === 1 ? "" : "s"}`;
  $("[data-stat-sub=unpricedRequests]").textContent = fmtUnpriced(totals.unpricedRequests);

  const errors = $("#recent-errors tbody");
  if (!stats.recentErrors.length) emptyRow(errors, `No errors in ${period}.`);
  else {
    fill(errors, stats.recentErrors.map((e) => h("tr", {},
      h("td", { class: "nowrap" }, fmtRelative(e.lastSeen)),
      h("td", {}, h("span", { class: "badge bad" }, e.statusCode ?? "–")),
      h("td", {}, accountLabel(e.accountName)),
      h("td", { class: "num" }, fmtInt(e.count)),
      h("td", { class: "wrap" }, e.message),
    )));
  }
  const accounts = $("#account-stats tbody");
  if (!analytics.accountPerformance.length) emptyRow(accounts, `No requests in ${period}.`);
  else {
    fill(accounts, analytics.accountPerformance.map((a) => h("tr", {},
      h("td", {}, accountLabel(a.name)),
      h("td", { class: "num" }, fmtInt(a.requests)),
      h("td", { class: "num" }, fmtPct(a.successRate)),
    )));
  }
  const models = $("#top-models tbody");
  const total = analytics.modelDistribution.reduce((sum, m) => sum + m.count, 0);
  if (!analytics.modelDistribution.length) emptyRow(models, `No requests in ${period}.`);
  else {
    fill(models, analytics.modelDistribution.slice(0, 10).map((m) => h("tr", {},
      h("td", {}, m.model),
      h("td", { class: "num" }, `${fmtInt(m.count)} · ${fmtPct((100 * m.count) / total)}`),
    )));
  }
}

function showPool(accounts) {
  const now = Date.now();
  const counts = {
    configured: accounts.length,
    routable: accounts.filter((a) => a.isAvailable).length,
    paused: accounts.filter((a) => a.paused).length,
    rateLimited: accounts.filter((a) => a.rateLimitedUntil && a.rateLimitedUntil > now).length,
    reauth: accounts.filter((a) => a.requiresReauth).length,
  };
  for (const el of $$("[data-pool]")) el.textContent = fmtInt(counts[el.dataset.pool]);
}

let requestsChart = null;
let tokensChart = null;

function showCharts(analytics) {
  const { range, bucket } = analytics.meta;
  const step = BUCKET_MS[bucket];
  const grid = bucketGrid(range, bucket);
  const series = analytics.timeSeries;
  const labels = bucketLabels(grid, bucket);
  const requests = onGrid(grid, series, (e) => e.requests, step);
  const errors = onGrid(grid, series, (e) => Math.round((e.requests * e.errorRate) / 100), step);
  const ok = requests.map((n, i) => n - errors[i]);
  const tokens = onGrid(grid, series, (e) => e.tokens, step);
  const cost = onGrid(grid, series, (e) => e.costUsd, step);

  const requestsConfig = () => ({
    type: "bar",
    data: {
      labels,
      datasets: [
        { label: "Successful", data: ok, backgroundColor: seriesColor(2), borderRadius: 2 },
        { label: "Errors", data: errors, backgroundColor: seriesColor(4), borderRadius: 2 },
      ],
    },
    options: timeOptions({ stacked: true, y: { ticks: { precision: 0 } } }),
  });
  const tokensConfig = () => ({
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "Tokens", data: tokens, borderColor: seriesColor(0), backgroundColor: fade(seriesColor(0)), fill: true, cubicInterpolationMode: "monotone", pointRadius: 0, yAxisID: "y" },
        { label: "Cost (USD)", data: cost, borderColor: seriesColor(1), backgroundColor: seriesColor(1), cubicInterpolationMode: "monotone", pointRadius: 0, yAxisID: "y2" },
      ],
    },
    options: timeOptions({ y: { ticks: { callback: (v) => fmtCount(v) } }, y2: { ticks: { callback: (v) => fmtUsd(v) } } }),
  });
  if (requestsChart) requestsChart.set(requestsConfig);
  else requestsChart = chart($("#chart-requests"), requestsConfig);
  if (tokensChart) tokensChart.set(tokensConfig);
  else tokensChart = chart($("#chart-tokens"), tokensConfig);
}

async function refresh() {
  const select = $("#overview-range");
  const range = select.value;
  const period = select.selectedOptions[0].textContent.toLowerCase();
  const [stats, accounts, analytics] = await Promise.all([
    api(`/api/stats?errorsSinceHours=${PERIOD_HOURS[range]}`),
    api("/api/accounts"),
    api(`/api/analytics?range=${encodeURIComponent(range)}`),
  ]);
  $("#period-label").textContent = `the ${period}`;
  for (const el of $$("[data-role=period]")) el.textContent = select.selectedOptions[0].textContent;
  showStats(analytics, stats, `the ${period}`);
  showPool(accounts);
  showCharts(analytics);
  document.body.dataset.ready = "true";
}

export async function start() {
  const select = $("#overview-range");
  const remembered = localStorage.getItem(PERIOD_KEY);
  if (remembered && PERIOD_HOURS[remembered]) select.value = remembered;
  select.addEventListener("change", () => {
    localStorage.setItem(PERIOD_KEY, select.value);
    refresh().catch((e) => toast(e.message, "error"));
  });
  $("#reset-stats").addEventListener("click", async () => {
    if (!confirm("Delete every recorded request and zero the accounts' counters? This cannot be undone.")) return;
    const result = await post("/api/stats/reset");
    toast(`Deleted ${fmtInt(result.deletedRequests)} requests.`);
    await refresh();
  });
  await Promise.all([refresh(), startCapacity($("#capacity"))]);
  setInterval(() => {
    if (document.visibilityState === "visible") refresh().catch(() => {});
  }, REFRESH_MS);
}
