// API keys: generate (the key is shown once), enable, disable, change role, delete; each key's
// limits (shown with what the key used this UTC day, week and month) and a form to edit them.

import { api, post, storeKey, storedKey } from "../api.js";
import { $, emptyRow, fill, h, toast } from "../dom.js";
import { fmtInt, fmtRelative, fmtUsd } from "../format.js";

const NUMBER_FIELDS = ["rpm", "tpm", "maxConcurrent", "budgetDailyUsd", "budgetWeeklyUsd", "budgetMonthlyUsd"];
let editing = null; // the key whose limits the form shows

function limitsSummary(limits) {
  if (!limits) return "none";
  const parts = [];
  if (limits.rpm) parts.push(`${fmtInt(limits.rpm)} req/min`);
  if (limits.tpm) parts.push(`${fmtInt(limits.tpm)} tok/min`);
  if (limits.maxConcurrent) parts.push(`${limits.maxConcurrent} at once`);
  if (limits.budgetDailyUsd != null) parts.push(`${fmtUsd(limits.budgetDailyUsd)}/day`);
  if (limits.budgetWeeklyUsd != null) parts.push(`${fmtUsd(limits.budgetWeeklyUsd)}/week`);
  if (limits.budgetMonthlyUsd != null) parts.push(`${fmtUsd(limits.budgetMonthlyUsd)}/month`);
  if (limits.models && limits.models.length) parts.push(`models ${limits.models.join(", ")}`);
  if (limits.expiresAt) parts.push(`expires ${limits.expiresAt.replace("T", " ").replace(/:00Z$|Z$/, "")} UTC`);
  return parts.join(" · ");
}

function period(requests, tokens, spent, budget) {
  const of = budget != null ? ` of ${fmtUsd(budget)}` : "";
  return h("span", { class: "nowrap", title: `${fmtInt(requests)} requests, ${fmtInt(tokens)} tokens` },
    `${fmtUsd(spent)}${of} · ${fmtInt(tokens)} tok`);
}

function showLimits(k) {
  editing = k;
  const form = $("#limits-form");
  const limits = k.limits || {};
  for (const field of NUMBER_FIELDS) form.elements[field].value = limits[field] ?? "";
  form.elements.models.value = (limits.models || []).join(", ");
  form.elements.expiresAt.value = limits.expiresAt ? limits.expiresAt.replace(/Z$/, "").slice(0, 16) : "";
  $("#limits-key-name").textContent = k.name;
  $("#limits-error").hidden = true;
  $("#limits-panel").hidden = false;
  $("#limits-panel").scrollIntoView({ block: "nearest" });
}

function formLimits(form) {
  const limits = {};
  for (const field of NUMBER_FIELDS) {
    const value = form.elements[field].value.trim();
    if (value !== "") limits[field] = Number(value);
  }
  const models = form.elements.models.value.split(",").map((p) => p.trim()).filter(Boolean);
  if (models.length) limits.models = models;
  const expires = form.elements.expiresAt.value;
  if (expires) limits.expiresAt = `${expires}:00Z`;
  return limits;
}

async function saveLimits(limits) {
  const error = $("#limits-error");
  error.hidden = true;
  try {
    await api(keyPath(editing, "/limits"), { method: "PUT", body: { limits } });
    toast(limits ? `Limits of ${editing.name} saved.` : `Limits of ${editing.name} removed.`);
    $("#limits-panel").hidden = true;
    editing = null;
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  }
  await load();
}

function keyPath(k, suffix = "") {
  return `/api/api-keys/${encodeURIComponent(k.id)}${suffix}`;
}

function button(label, handler, cls = "button small") {
  return h("button", { type: "button", class: cls, onclick: async (event) => {
    event.currentTarget.disabled = true;
    try {
      await handler();
    } catch (error) {
      toast(error.message, "error");
    }
    await load();
  } }, label);
}

function row(k) {
  const other = k.role === "admin" ? "api-only" : "admin";
  return h("tr", { dataset: { keyName: k.name } },
    h("td", {}, h("strong", {}, k.name)),
    h("td", { class: "mono nowrap" }, `btr-…${k.prefixLast8}`),
    h("td", {}, h("span", { class: k.role === "admin" ? "badge accent" : "badge" }, k.role)),
    h("td", {}, h("span", { class: k.isActive ? "badge ok" : "badge" }, k.isActive ? "active" : "disabled")),
    h("td", { class: "limits" }, limitsSummary(k.limits)),
    ...(k.use
      ? [
        h("td", {}, period(k.use.requestsToday, k.use.tokensToday, k.use.spentTodayUsd, k.limits?.budgetDailyUsd)),
        h("td", {}, period(k.use.requestsThisWeek, k.use.tokensThisWeek, k.use.spentThisWeekUsd, k.limits?.budgetWeeklyUsd)),
        h("td", {}, period(k.use.requestsThisMonth, k.use.tokensThisMonth, k.use.spentThisMonthUsd, k.limits?.budgetMonthlyUsd)),
      ]
      : [h("td", {}, "–"), h("td", {}, "–"), h("td", {}, "–")]),
    h("td", { class: "nowrap" }, fmtRelative(k.lastUsed)),
    h("td", { class: "num" }, fmtInt(k.usageCount)),
    h("td", {}, h("div", { class: "row-actions" },
      k.isActive
        ? button("Disable", () => post(keyPath(k, "/disable")))
        : button("Enable", () => post(keyPath(k, "/enable"))),
      h("button", { type: "button", class: "button small", onclick: () => showLimits(k) }, "Limits"),
      button(`Make ${other}`, () => api(keyPath(k, "/role"), { method: "PATCH", body: { role: other } })),
      button("Delete", async () => {
        if (!confirm(`Delete the key “${k.name}”? Clients using it stop working at once.`)) return;
        await api(keyPath(k), { method: "DELETE" });
        toast(`Key ${k.name} deleted.`);
      }, "button small danger"))));
}

async function load() {
  const keys = await api("/api/api-keys");
  const tbody = $("#keys-table tbody");
  if (!keys.data.length) emptyRow(tbody, "No keys: the proxy and this dashboard are open to anyone who can reach them. Generate an admin key to require one.");
  else fill(tbody, keys.data.map(row));
}

export async function start() {
  const form = $("#new-key-form");
  const error = $("#new-key-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const name = form.elements.name.value.trim();
    if (!name) {
      error.textContent = "Give the key a name, such as the machine or person using it.";
      error.hidden = false;
      return;
    }
    try {
      const created = await post("/api/api-keys", { name, role: form.elements.role.value });
      $("#new-key-value").textContent = created.data.apiKey;
      $("#new-key-result").hidden = false;
      form.reset();
      // The first admin key turns authentication on: keep using the dashboard with it.
      if (created.data.role === "admin" && !storedKey()) {
        storeKey(created.data.apiKey);
        toast("This browser now uses the new admin key for the dashboard.");
      }
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
    await load();
  });
  $("#copy-new-key").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("#new-key-value").textContent);
      toast("Copied.");
    } catch {
      toast("Copying is not allowed here; select the key and copy it by hand.", "error");
    }
  });
  const limitsForm = $("#limits-form");
  limitsForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    await saveLimits(formLimits(limitsForm));
  });
  $("#clear-limits").addEventListener("click", () => saveLimits(null));
  $("#close-limits").addEventListener("click", () => {
    $("#limits-panel").hidden = true;
    editing = null;
  });
  $("#dismiss-new-key").addEventListener("click", () => {
    // Forget the secret as soon as the operator is done with it.
    $("#new-key-value").textContent = "";
    $("#new-key-result").hidden = true;
  });
  await load();
  document.body.dataset.ready = "true";
}
