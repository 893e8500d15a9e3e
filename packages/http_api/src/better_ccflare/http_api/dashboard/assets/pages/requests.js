// Live requests: the newest rows from /api/requests, then every new one from the SSE stream.

import { ApiError, api, follow } from "../api.js";
import { conversationView, rawView } from "../conversation.js";
import { $, $$, emptyRow, fill, h, liveStatus } from "../dom.js";
import { fmtCost, fmtCount, fmtDateTime, fmtInt, fmtMs, fmtRate, fmtTime } from "../format.js";

const MAX_ROWS = 500;
const rows = new Map(); // id → request row, newest first by insertion into `order`
let order = [];
let paused = false;
let loading = true; // stream events wait in `queued` until the first page of rows is in
const queued = [];

function statusBadge(r) {
  if (r.statusCode === null || r.statusCode === undefined) return h("span", { class: "badge" }, "…");
  const kind = r.success ? "ok" : r.statusCode === 429 ? "warn" : "bad";
  return h("span", { class: `badge ${kind}`, title: r.errorMessage ?? "" }, r.statusCode);
}

function modelCell(r) {
  const mapped = r.appliedModel && r.originalModel && r.appliedModel !== r.originalModel;
  return h("td", { class: "nowrap" }, r.model ?? "–", mapped ? h("div", { class: "muted small" }, `→ ${r.appliedModel}`) : null);
}

function rowView(r) {
  return h("tr", { dataset: { id: r.id }, tabindex: 0 },
    h("td", { class: "nowrap", title: r.timestamp ?? "" }, fmtTime(r.timestampMs ?? r.timestamp)),
    h("td", {}, statusBadge(r)),
    h("td", { class: "wrap" }, h("span", { class: "muted" }, r.method), " ", r.path,
      r.failoverAttempts ? h("div", { class: "muted small" }, `${r.failoverAttempts} failover${r.failoverAttempts > 1 ? "s" : ""}`) : null,
      !r.success && r.errorMessage ? h("div", { class: "muted small" }, r.errorMessage) : null),
    modelCell(r),
    h("td", { class: "nowrap" }, r.accountUsed ?? "–"),
    h("td", { class: "num" }, fmtCount(r.inputTokens)),
    h("td", { class: "num" }, fmtCount(r.outputTokens)),
    h("td", { class: "num" }, fmtCount(r.cacheReadInputTokens)),
    h("td", { class: "num" }, fmtCost(r.costUsd)),
    h("td", { class: "num" }, fmtMs(r.responseTimeMs)),
    h("td", { class: "num" }, fmtRate(r.tokensPerSecond)),
  );
}

function matches(r) {
  if ($("#errors-only").checked && r.success) return false;
  const needle = $("#request-filter").value.trim().toLowerCase();
  if (!needle) return true;
  return [r.model, r.accountUsed, r.path, String(r.statusCode), r.errorMessage, r.apiKeyName, r.agentUsed]
    .some((v) => v && String(v).toLowerCase().includes(needle));
}

function render() {
  const tbody = $("#requests-table tbody");
  const visible = order.map((id) => rows.get(id)).filter(matches);
  if (!visible.length) {
    emptyRow(tbody, order.length ? "No request matches the filter." : "No requests yet. Send one through the proxy and it appears here.");
    return;
  }
  fill(tbody, visible.map(rowView));
}

/** Add or update a row; a new one is highlighted briefly. */
function upsert(r, fresh) {
  const known = rows.has(r.id);
  rows.set(r.id, { ...rows.get(r.id), ...r });
  if (!known) {
    order.unshift(r.id);
    for (const old of order.splice(MAX_ROWS)) rows.delete(old);
  }
  const tbody = $("#requests-table tbody");
  const existing = tbody.querySelector(`tr[data-id="${CSS.escape(r.id)}"]`);
  const row = rows.get(r.id);
  if (!matches(row)) {
    existing?.remove();
    if (!tbody.children.length) render();
    return;
  }
  const view = rowView(row);
  if (fresh) view.classList.add("fresh");
  if (existing) existing.replaceWith(view);
  else {
    tbody.querySelector("tr.empty")?.remove();
    tbody.prepend(view);
    while (tbody.children.length > MAX_ROWS) tbody.lastElementChild.remove();
  }
}

function onStreamEvent({ event, data }) {
  if (event !== "message") return;
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    return;
  }
  const row = message.type === "summary" ? message.payload
    : message.type === "start" ? { ...message, success: true, statusCode: null, accountUsed: message.accountUsed ?? null, inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, costUsd: 0 }
    : null;
  if (!row) return;
  if (message.type === "start" && rows.has(row.id)) return;
  if (paused || loading) queued.push(row);
  else upsert(row, true);
}

// ------------------------------------------------------------------ detail dialog

function fact(label, value, span = false) {
  return h("div", { class: span ? "span" : null }, h("dt", {}, label), h("dd", {}, value ?? "–"));
}

function showTab(dialog, name) {
  for (const tab of $$("[role=tab]", dialog)) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  for (const panel of $$("[data-panel]", dialog)) panel.hidden = panel.dataset.panel !== name;
}

async function openDetail(id) {
  const r = rows.get(id);
  const dialog = $("#request-dialog");
  $("#request-dialog-title").textContent = `${r.method} ${r.path}`;
  fill($("#request-facts"),
    fact("Time", fmtDateTime(r.timestampMs ?? r.timestamp)),
    fact("Status", statusBadge(r)),
    fact("Account", r.accountUsed),
    fact("Model", r.model),
    fact("Latency", fmtMs(r.responseTimeMs)),
    fact("Tokens in / out", `${fmtInt(r.inputTokens)} / ${fmtInt(r.outputTokens)}`),
    fact("Cache read / write", `${fmtInt(r.cacheReadInputTokens)} / ${fmtInt(r.cacheCreationInputTokens)}`),
    fact("Cost", fmtCost(r.costUsd)),
    fact("Output speed", r.tokensPerSecond ? `${fmtRate(r.tokensPerSecond)} tok/s` : null),
    fact("Failovers", fmtInt(r.failoverAttempts ?? 0)),
    r.agentUsed ? fact("Agent", r.agentUsed) : null,
    r.apiKeyName ? fact("API key", r.apiKeyName) : null,
    r.streamTerminalState ? fact("Stream", r.streamTerminalState) : null,
    r.clientSessionId ? fact("Client session", r.clientSessionId) : null,
    r.errorMessage ? fact("Error", r.errorMessage, true) : null,
  );
  const panels = Object.fromEntries($$("[data-panel]", dialog).map((p) => [p.dataset.panel, p]));
  for (const panel of Object.values(panels)) fill(panel, h("p", { class: "muted" }, "Loading…"));
  showTab(dialog, "conversation");
  if (!dialog.open) dialog.showModal();
  try {
    const payload = await api(`/api/requests/payload/${encodeURIComponent(id)}`);
    fill(panels.conversation, conversationView(payload));
    fill(panels.request, rawView(payload.request, "request"));
    fill(panels.response, rawView(payload.response, "response"));
  } catch (error) {
    const message = error instanceof ApiError && error.status === 404
      ? "No payload is stored for this request: payload storage is off, it has expired, or it is still being written."
      : error.message;
    for (const panel of Object.values(panels)) fill(panel, h("p", { class: "muted" }, message));
  }
}

export async function start() {
  const dialog = $("#request-dialog");
  for (const tab of $$("[role=tab]", dialog)) tab.addEventListener("click", () => showTab(dialog, tab.dataset.tab));
  const table = $("#requests-table");
  table.addEventListener("click", (event) => {
    const tr = event.target.closest("tr[data-id]");
    if (tr) openDetail(tr.dataset.id);
  });
  table.addEventListener("keydown", (event) => {
    const tr = event.target.closest("tr[data-id]");
    if (tr && event.key === "Enter") openDetail(tr.dataset.id);
  });
  $("#request-filter").addEventListener("input", render);
  $("#errors-only").addEventListener("change", render);
  $("#pause-live").addEventListener("click", (event) => {
    paused = !paused;
    event.currentTarget.setAttribute("aria-pressed", String(paused));
    event.currentTarget.textContent = paused ? `Resume` : "Pause";
    if (!paused) for (const row of queued.splice(0)) upsert(row, true);
  });

  // Subscribe first, so a request finishing while the list loads is not missed.
  follow("/api/requests/stream", onStreamEvent, (state) => {
    liveStatus(state);
    document.body.dataset.live = state;
  });
  const initial = await api("/api/requests?limit=200");
  for (const r of initial) {
    rows.set(r.id, r);
    order.push(r.id);
  }
  render();
  loading = false;
  for (const row of queued.splice(0)) upsert(row, true);
  document.body.dataset.ready = "true";
}
