// Requests: the history a page at a time from /api/requests (searched and filtered by the
// server, so over the whole history), and on the first page every new one from the SSE stream.

import { ApiError, api, follow } from "../api.js";
import { conversationView, rawView } from "../conversation.js";
import { $, $$, emptyRow, fill, h, liveStatus, toast } from "../dom.js";
import { fmtCost, fmtCount, fmtDateTime, fmtInt, fmtMs, fmtRate, fmtStamp } from "../format.js";

const PAGE_SIZE = 50;
const MAX_ROWS = 500;
const SEARCH_DELAY_MS = 300;
const rows = new Map(); // id → request row
let order = []; // ids on this page, newest first
let offsets = [0]; // the offset of each page walked through; the last is this page's
let hasOlder = false;
let paused = false;
let loading = true; // stream events wait in `queued` until the page's rows are in
const queued = [];

const firstPage = () => offsets.length === 1;

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
    h("td", { class: "nowrap", title: r.timestamp ?? "" }, fmtStamp(r.timestampMs ?? r.timestamp)),
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

function search() {
  return $("#request-filter").value.trim();
}

/** Whether a live row belongs on this page: the server's search, approximated for new rows. */
function matches(r) {
  if ($("#errors-only").checked && r.success) return false;
  const needle = search().toLowerCase();
  if (!needle) return true;
  return [r.id, r.model, r.accountUsed, r.path, r.errorMessage, r.apiKeyName, r.agentUsed, r.project]
    .some((v) => v && String(v).toLowerCase().includes(needle)) || String(r.statusCode) === needle;
}

function render() {
  const tbody = $("#requests-table tbody");
  const visible = order.map((id) => rows.get(id));
  if (!visible.length) {
    const filtered = search() || $("#errors-only").checked;
    emptyRow(tbody, filtered ? "No request matches the search." : "No requests yet. Send one through the proxy and it appears here.");
  } else fill(tbody, visible.map(rowView));
  showPager();
}

function showPager() {
  const start = offsets.at(-1);
  const recorded = order.filter((id) => rows.get(id).statusCode !== null).length;
  $("#page-info").textContent = order.length
    ? `Rows ${fmtInt(start + 1)}–${fmtInt(start + order.length)}${firstPage() && !paused ? " · live" : ""}`
    : "";
  $("#page-info").dataset.recorded = String(recorded);
  $("#page-newer").disabled = firstPage();
  $("#page-older").disabled = !hasOlder;
}

/** Load the page starting at the last of `offsets` from the server. */
async function loadPage() {
  loading = true;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE + 1), offset: String(offsets.at(-1)) });
  if (search()) params.set("q", search());
  if ($("#errors-only").checked) params.set("status", "error");
  try {
    const page = await api(`/api/requests?${params}`);
    hasOlder = page.length > PAGE_SIZE;
    rows.clear();
    order = [];
    for (const r of page.slice(0, PAGE_SIZE)) {
      rows.set(r.id, r);
      order.push(r.id);
    }
    render();
  } finally {
    loading = false;
  }
  // Live rows wait while a page loads; only the first page shows them.
  for (const row of queued.splice(0)) if (firstPage() && !paused) upsert(row, true);
}

/** Add or update a live row (first page only); a new one is highlighted briefly. */
function upsert(r, fresh) {
  const known = rows.has(r.id);
  const row = { ...rows.get(r.id), ...r };
  const tbody = $("#requests-table tbody");
  const existing = tbody.querySelector(`tr[data-id="${CSS.escape(r.id)}"]`);
  if (!matches(row)) {
    if (known) {
      rows.delete(r.id);
      order = order.filter((id) => id !== r.id);
      existing?.remove();
      if (!order.length) render();
    }
    return;
  }
  rows.set(r.id, row);
  if (!known) {
    order.unshift(r.id);
    for (const old of order.splice(MAX_ROWS)) {
      rows.delete(old);
      hasOlder = true;
    }
  }
  const view = rowView(row);
  if (fresh) view.classList.add("fresh");
  if (existing) existing.replaceWith(view);
  else {
    tbody.querySelector("tr.empty")?.remove();
    tbody.prepend(view);
    while (tbody.children.length > MAX_ROWS) tbody.lastElementChild.remove();
  }
  showPager();
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
  if (loading || paused) queued.push(row);
  else if (firstPage()) upsert(row, true);
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
  const reload = () => loadPage().catch((error) => toast(error.message, "error"));
  let searchTimer = null;
  $("#request-filter").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      offsets = [0];
      reload();
    }, SEARCH_DELAY_MS);
  });
  $("#errors-only").addEventListener("change", () => {
    offsets = [0];
    reload();
  });
  $("#page-older").addEventListener("click", () => {
    // The next page starts after the recorded rows shown here (in-flight ones are not stored yet).
    offsets.push(offsets.at(-1) + Number($("#page-info").dataset.recorded));
    reload();
  });
  $("#page-newer").addEventListener("click", () => {
    if (offsets.length > 1) offsets.pop();
    reload();
  });
  $("#pause-live").addEventListener("click", (event) => {
    paused = !paused;
    event.currentTarget.setAttribute("aria-pressed", String(paused));
    event.currentTarget.textContent = paused ? "Resume" : "Pause";
    if (!paused) for (const row of queued.splice(0)) if (firstPage()) upsert(row, true);
    showPager();
  });

  // Subscribe first, so a request finishing while the list loads is not missed.
  follow("/api/requests/stream", onStreamEvent, (state) => {
    liveStatus(state);
    document.body.dataset.live = state;
  });
  await loadPage();
  document.body.dataset.ready = "true";
}
