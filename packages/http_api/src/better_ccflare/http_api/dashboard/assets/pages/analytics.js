// Analytics: /api/analytics with its filters, as charts and tables. Filters live in the URL,
// so a filtered view can be bookmarked or shared.

import { api } from "../api.js";
import { BUCKET_MS, bucketGrid, bucketLabels, chart, fade, onGrid, seriesColor, timeOptions } from "../charts.js";
import { $, $$, emptyRow, fill, h, toast } from "../dom.js";
import { NO_ACCOUNT, accountLabel, fmtCount, fmtInt, fmtMs, fmtPct, fmtRate, fmtUnpriced, fmtUsd } from "../format.js";

const form = () => $("#analytics-filters");
const handles = {};

function draw(id, build) {
  if (handles[id]) handles[id].set(build);
  else handles[id] = chart($(`#${id}`), build);
}

// ------------------------------------------------------------------ filters

function selected(name) {
  return $$(`.multi[data-filter=${name}] input:checked`).map((i) => i.value);
}

function query() {
  const f = form().elements;
  const params = new URLSearchParams({ range: f.range.value, status: f.status.value });
  for (const name of ["accounts", "models", "apiKeys"]) {
    const values = selected(name);
    if (values.length) params.set(name, values.join(","));
  }
  if (f.cumulative.checked) params.set("mode", "cumulative");
  if (f.modelBreakdown.checked) params.set("modelBreakdown", "true");
  return params;
}

function restore(params) {
  const f = form().elements;
  if (params.get("range")) f.range.value = params.get("range");
  if (params.get("status")) f.status.value = params.get("status");
  f.cumulative.checked = params.get("mode") === "cumulative";
  f.modelBreakdown.checked = params.get("modelBreakdown") === "true";
}

const ALL_LABEL = { accounts: "All accounts", models: "All models", apiKeys: "All API keys" };

/** Fill a multi-select's checkboxes, keeping what was chosen (from the URL on first load). */
function setOptions(name, values, chosen) {
  const box = $(`.multi[data-filter=${name}]`);
  const options = $(".multi-options", box);
  const all = [...new Set([...values, ...chosen])].sort((a, b) => a.localeCompare(b));
  if (!all.length) fill(options, h("div", { class: "empty" }, "Nothing to filter yet."));
  else {
    fill(options, all.map((v) => h("label", { class: "check" },
      h("input", { type: "checkbox", value: v, checked: chosen.includes(v) }), name === "accounts" ? accountLabel(v) : v)));
  }
  summarize(name);
}

function summarize(name) {
  const values = selected(name);
  $(`.multi[data-filter=${name}] summary`).textContent =
    values.length === 0 ? ALL_LABEL[name] : values.length === 1 ? (name === "accounts" ? accountLabel(values[0]) : values[0]) : `${values.length} selected`;
}

// ------------------------------------------------------------------ drawing

function showTotals(t) {
  const formats = {
    requests: fmtInt, successRate: fmtPct, avgResponseTime: fmtMs,
    totalTokens: fmtCount, totalCostUsd: fmtUsd, avgTokensPerSecond: fmtRate,
  };
  for (const el of $$("[data-total]")) {
    el.dataset.value = String(t[el.dataset.total]);
    el.textContent = formats[el.dataset.total](t[el.dataset.total]);
  }
  $("[data-total-sub=unpricedRequests]").textContent = fmtUnpriced(t.unpricedRequests);
}

/** A model's bar label in the cost chart, saying when its cost is (partly) unknown. */
function costLabel(c) {
  if (!c.unpricedRequests) return c.model;
  return c.unpricedRequests === c.requests ? `${c.model} (unknown price)` : `${c.model} (+${fmtInt(c.unpricedRequests)} unpriced)`;
}

/** One dataset per model (with the breakdown) or one for everything. */
function seriesSets(data, pick, grid, step) {
  const { timeSeries } = data;
  const models = [...new Set(timeSeries.map((e) => e.model).filter(Boolean))];
  if (!models.length) return [{ label: null, data: onGrid(grid, timeSeries, pick, step) }];
  return models.map((m) => ({ label: m, data: onGrid(grid, timeSeries.filter((e) => e.model === m), pick, step) }));
}

function lineSets(sets, label, fill) {
  return sets.map((s, i) => ({
    label: s.label ?? label, data: s.data, borderColor: seriesColor(i), backgroundColor: fade(seriesColor(i)),
    fill: fill && sets.length === 1, cubicInterpolationMode: "monotone", pointRadius: 0, borderWidth: 2,
  }));
}

function showCharts(data) {
  const { range, bucket, cumulative } = data.meta;
  const step = BUCKET_MS[bucket];
  const grid = bucketGrid(range, bucket);
  const labels = bucketLabels(grid, bucket);
  // Cumulative series carry their running total forward through empty buckets.
  const carry = (values) => {
    if (!cumulative) return values;
    let last = 0;
    return values.map((v) => (last = v || last));
  };
  const sets = (pick) => seriesSets(data, pick, grid, step).map((s) => ({ ...s, data: carry(s.data) }));

  draw("a-requests", () => ({
    type: cumulative ? "line" : "bar",
    data: { labels, datasets: sets((e) => e.requests).map((s, i) => ({ label: s.label ?? "Requests", data: s.data, backgroundColor: seriesColor(i), borderColor: seriesColor(i), borderRadius: 2, pointRadius: 0 })) },
    options: timeOptions({ stacked: !cumulative, y: { ticks: { precision: 0 } } }),
  }));
  draw("a-tokens", () => ({
    type: "line",
    data: { labels, datasets: lineSets(sets((e) => e.tokens), "Tokens", true) },
    options: timeOptions({ y: { ticks: { callback: (v) => fmtCount(v) } } }),
  }));
  draw("a-cost", () => ({
    type: "line",
    data: { labels, datasets: lineSets(sets((e) => e.costUsd), "Cost", true) },
    options: timeOptions({ y: { ticks: { callback: (v) => fmtUsd(v) } } }),
  }));
  const all = data.timeSeries.filter((e) => !e.model);
  const series = all.length ? all : data.timeSeries;
  draw("a-speed", () => ({
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "Avg response time", data: onGrid(grid, series, (e) => e.avgResponseTime, step), borderColor: seriesColor(1), backgroundColor: seriesColor(1), cubicInterpolationMode: "monotone", pointRadius: 0, yAxisID: "y" },
        { label: "Tokens per second", data: onGrid(grid, series, (e) => e.avgTokensPerSecond, step), borderColor: seriesColor(2), backgroundColor: seriesColor(2), cubicInterpolationMode: "monotone", pointRadius: 0, yAxisID: "y2" },
      ],
    },
    options: timeOptions({ y: { ticks: { callback: (v) => fmtMs(v) } }, y2: { ticks: { callback: (v) => `${fmtCount(v)} tok/s` } } }),
  }));
  const b = data.tokenBreakdown;
  draw("a-breakdown", () => ({
    type: "doughnut",
    data: {
      labels: ["Input", "Output", "Cache read", "Cache write"],
      datasets: [{ data: [b.inputTokens, b.outputTokens, b.cacheReadInputTokens, b.cacheCreationInputTokens], backgroundColor: [0, 1, 2, 3].map(seriesColor), borderColor: getComputedStyle(document.documentElement).getPropertyValue("--surface").trim(), borderWidth: 2 }],
    },
    options: {
      responsive: true, maintainAspectRatio: false, cutout: "62%",
      plugins: { legend: { position: "right" }, tooltip: { callbacks: { label: (c) => ` ${c.label}: ${fmtCount(c.parsed)}` } } },
    },
  }));
  const costs = data.costByModel.slice(0, 10);
  draw("a-cost-model", () => ({
    type: "bar",
    data: { labels: costs.map(costLabel), datasets: [{ label: "Cost", data: costs.map((c) => c.costUsd), backgroundColor: costs.map((_, i) => seriesColor(i)), borderRadius: 3, maxBarThickness: 28 }] },
    options: {
      indexAxis: "y", responsive: true, maintainAspectRatio: false,
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => ` ${fmtUsd(c.parsed.x)}` } } },
      scales: { x: { beginAtZero: true, ticks: { callback: (v) => fmtUsd(v), maxTicksLimit: 6 } }, y: { grid: { display: false } } },
    },
  }));
}

function showTables(data) {
  const models = $("#model-performance tbody");
  if (!data.modelPerformance.length) emptyRow(models, "No requests in this range.");
  else fill(models, data.modelPerformance.map((m) => h("tr", {},
    h("td", {}, m.model), h("td", { class: "num" }, fmtInt(m.requests)), h("td", { class: "num" }, fmtMs(m.avgResponseTime)),
    h("td", { class: "num" }, fmtRate(m.avgTokensPerSecond)), h("td", { class: "num" }, fmtPct(m.errorRate)))));
  const accounts = $("#account-performance tbody");
  if (!data.accountPerformance.length) emptyRow(accounts, "No requests in this range.");
  else fill(accounts, data.accountPerformance.map((a) => h("tr", {},
    h("td", {}, accountLabel(a.name)), h("td", { class: "num" }, fmtInt(a.requests)), h("td", { class: "num" }, fmtPct(a.successRate)))));
  const keys = $("#apikey-performance tbody");
  if (!data.apiKeyPerformance.length) emptyRow(keys, "No requests in this range.");
  else fill(keys, data.apiKeyPerformance.map((k) => h("tr", {},
    h("td", {}, k.name), h("td", { class: "num" }, fmtInt(k.requests)), h("td", { class: "num" }, fmtPct(k.successRate)))));
}

let knownModels = new Set();

async function refresh() {
  const params = query();
  history.replaceState(null, "", `?${params}`);
  const data = await api(`/api/analytics?${params}`);
  for (const m of data.modelDistribution) knownModels.add(m.model);
  const chosenModels = selected("models");
  setOptions("models", [...knownModels], chosenModels);
  $("#analytics-meta").textContent = `${data.totals.requests ? fmtInt(data.totals.requests) : "No"} requests · ${data.meta.bucket} buckets${data.meta.cumulative ? " · cumulative" : ""}`;
  showTotals(data.totals);
  showCharts(data);
  showTables(data);
  document.body.dataset.ready = "true";
}

export async function start() {
  const params = new URLSearchParams(location.search);
  restore(params);
  const chosen = (name) => (params.get(name) ?? "").split(",").filter(Boolean);
  const [accounts, keys] = await Promise.all([api("/api/accounts"), api("/api/api-keys")]);
  setOptions("accounts", [...accounts.map((a) => a.name), NO_ACCOUNT], chosen("accounts"));
  setOptions("apiKeys", keys.data.map((k) => k.name), chosen("apiKeys"));
  setOptions("models", [], chosen("models"));
  knownModels = new Set(chosen("models"));

  const update = () => refresh().catch((error) => toast(error.message, "error"));
  form().addEventListener("change", (event) => {
    const multi = event.target.closest(".multi");
    if (multi) summarize(multi.dataset.filter);
    update();
  });
  form().addEventListener("reset", () => setTimeout(() => {
    for (const name of ["accounts", "models", "apiKeys"]) summarize(name);
    update();
  }));
  // Close an open filter list when clicking elsewhere.
  document.addEventListener("click", (event) => {
    for (const d of $$(".multi[open]")) if (!d.contains(event.target)) d.open = false;
  });
  await refresh();
}
