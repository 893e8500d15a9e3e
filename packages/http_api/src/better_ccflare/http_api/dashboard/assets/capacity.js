// The overview's capacity panel: what the pool can serve now and when that changes, from
// GET /api/capacity. A module of its own so the overview page only mounts it.

import { api } from "./api.js";
import { fill, h } from "./dom.js";
import { fmtRelative, windowLabel } from "./format.js";

const REFRESH_MS = 15000;

const REASONS = {
  usage_exhausted: "window used up",
  rate_limited: "rate limited",
  paused: "paused",
  requires_reauth: "needs re-login",
  overloaded: "overloaded",
  credentials_rejected: "credentials rejected",
  out_of_credits: "out of credits",
  unreachable: "unreachable",
  unavailable: "unavailable",
};

function poolStatus(pool) {
  if (pool.canServe) return h("p", { class: "capacity-status ok", dataset: { state: "serving" } }, "Serving now");
  const back = pool.availableAt ? `first account back ${fmtRelative(pool.availableAt)}` : "no account comes back by itself";
  return pool.windowsExhausted
    ? h("p", { class: "capacity-status bad", dataset: { state: "windows" } }, `Usage limit reached · ${back}`)
    : h("p", { class: "capacity-status warn", dataset: { state: "unavailable" } }, `No account can serve · ${back}`);
}

function windowRow(w, detail) {
  // A native <meter>: the browser colours it by the low/high marks (70 % and 90 % used).
  const used = Math.round(w.utilization);
  return h("div", { class: "usage-row", dataset: { window: w.key } },
    h("span", { class: "usage-label" }, windowLabel(w.key)),
    h("meter", { min: 0, max: 100, low: 70, high: 90, optimum: 0, value: Math.min(100, used), "aria-label": `${windowLabel(w.key)} use across the pool` }),
    h("span", { class: "usage-value" }, h("strong", {}, `${used}%`), detail));
}

function accountLine(a) {
  const state = a.canServe ? "ready" : REASONS[a.reason] ?? a.reason;
  const back = !a.canServe && a.availableAt ? ` · back ${fmtRelative(a.availableAt)}` : "";
  return h("li", { dataset: { account: a.name, canServe: String(a.canServe) } },
    h("span", {}, a.name), h("span", { class: "muted" }, ` ${state}${back}`));
}

function show(section, capacity) {
  const { pool } = capacity;
  const windows = pool.windows.length
    ? h("div", { class: "usage" }, pool.windows.map((w) => windowRow(w,
      `${w.resetsAt ? ` · resets ${fmtRelative(w.resetsAt)}` : ""}${w.exhausted ? ` · ${w.exhausted} of ${w.accounts} used up` : ""}`)))
    : h("p", { class: "muted small" }, "No usage readings yet.");
  fill(section.querySelector("[data-capacity=body]"),
    poolStatus(pool), windows, h("ul", { class: "capacity-accounts" }, capacity.accounts.map(accountLine)));
  section.dataset.ready = "true";
}

/** Draw the panel in ``section`` now and every 15 s while the page is visible. */
export async function startCapacity(section) {
  const refresh = async () => show(section, await api("/api/capacity"));
  await refresh();
  setInterval(() => {
    if (document.visibilityState === "visible") refresh().catch(() => {});
  }, REFRESH_MS);
}
