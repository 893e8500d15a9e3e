// Accounts: the pool with live state, every per-account action, and adding accounts of each
// type, including the Anthropic browser login (open the URL, paste code#state back). The types
// and the fields each needs come from /api/providers, so installed plugins appear here too.

import { api, post } from "../api.js";
import { $, $$, busy, fill, formError, h, toast } from "../dom.js";
import { fmtDateTime, fmtInt, fmtPct, fmtRelative, typeLabelsOf, windowLabel } from "../format.js";

const REFRESH_MS = 10000;
let accounts = [];
// The add form's choices, by <option> value: {provider (from /api/providers), login (OAuth
// mode of /api/oauth/init, or null), fields (what the form asks for)}.
let addChoices = new Map();
// Each account type's label ("Claude subscription"), by the type accounts store as `provider`:
// from /api/providers, so the dashboard names a type as the CLI and the API do.
let typeLabels = new Map();

/** "opus = a, b" lines or a JSON object → {family: [models]}; null when empty. */
export function parseMappings(text) {
  const trimmed = text.trim();
  if (!trimmed) return null;
  let entries;
  if (trimmed.startsWith("{")) {
    let parsed;
    try {
      parsed = JSON.parse(trimmed);
    } catch (error) {
      throw new Error(`Model mappings are not valid JSON: ${error.message}`);
    }
    entries = Object.entries(parsed).map(([k, v]) => [k, Array.isArray(v) ? v : [v]]);
  } else {
    entries = trimmed.split("\n").filter((l) => l.trim()).map((line) => {
      const [from, to] = line.split(/=|:|→/, 2);
      if (to === undefined) throw new Error(`Model mapping line “${line.trim()}” needs the form “requested = upstream”.`);
      return [from.trim(), to.split(",").map((m) => m.trim()).filter(Boolean)];
    });
  }
  return Object.fromEntries(entries);
}

function mappingsText(mappings) {
  return Object.entries(mappings ?? {}).map(([k, v]) => `${k} = ${[].concat(v).join(", ")}`).join("\n");
}

// ------------------------------------------------------------------ rendering

// A success rate under LOW_SUCCESS_PCT over the last hour, on at least MIN_RECENT requests,
// replaces "Ready" with a warning: the account is routable but failing.
const LOW_SUCCESS_PCT = 80;
const MIN_RECENT = 3;
let recent = new Map(); // account name → {requests, successRate} over the last hour

function needsLogin(a) {
  return a.requiresReauth || (a.tokenStatus === "expired" && !a.hasRefreshToken);
}

// The circuit breaker's states that need someone (the account is probed again meanwhile).
const ATTENTION = {
  credentials_rejected: ["Credentials rejected", "The upstream refused this account's credentials: update them (log in again) or reset it."],
  out_of_credits: ["Out of credits", "The upstream says this account has no credit left: top it up, or wait for a usage reading or a probe to find credit."],
};
const UNREACHABLE = new Set(["connect_failed", "upstream_timeout"]);

function limited(a) {
  return Boolean(ATTENTION[a.state] || (a.rateLimitedUntil && a.rateLimitedUntil > Date.now()));
}

function probeText(a) {
  return a.rateLimitedUntil && a.rateLimitedUntil > Date.now() ? `probed ${fmtRelative(a.rateLimitedUntil)}` : "the next request probes it";
}

/** Why a routable account is still worth a look: a low success rate in the last hour. */
function lowSuccess(a) {
  const r = recent.get(a.name);
  if (!r || r.requests < MIN_RECENT || r.successRate >= LOW_SUCCESS_PCT) return null;
  return `Only ${fmtPct(r.successRate)} of its ${fmtInt(r.requests)} requests in the last hour succeeded.`;
}

function stateCell(a) {
  const now = Date.now();
  const badges = [];
  const notes = [];
  const attention = ATTENTION[a.state];
  const isOAuth = a.provider === "anthropic";
  if (needsLogin(a)) {
    badges.push(h("span", { class: "badge bad" }, "Needs re-login"));
    notes.push(h("div", { class: "state-note alert", role: "alert" },
      "Needs re-login: the refresh token no longer works, so this account is not used. ",
      isOAuth ? action("Log in again", () => startReauth(a), "button small primary") : null));
  }
  if (attention) {
    badges.push(h("span", { class: "badge bad", title: attention[1] }, `${attention[0]} · ${probeText(a)}`));
    notes.push(h("div", { class: "state-note alert", role: "alert" }, `${attention[0]}: ${attention[1]} `,
      isOAuth && !needsLogin(a) ? action("Log in again", () => startReauth(a), "button small primary") : null));
  }
  if (a.paused) badges.push(h("span", { class: "badge", title: a.pauseReason ?? "" }, a.pauseReason && a.pauseReason !== "manual" ? `Paused · ${a.pauseReason.replaceAll("_", " ")}` : "Paused"));
  if (!attention && a.rateLimitedUntil && a.rateLimitedUntil > now) {
    const label = UNREACHABLE.has(a.rateLimitedReason) ? `Unreachable · retried ${fmtRelative(a.rateLimitedUntil)}` : `Rate limited · resets ${fmtRelative(a.rateLimitedUntil)}`;
    badges.push(h("span", { class: "badge warn", title: a.rateLimitedReason ?? "" }, label));
  }
  if (!badges.length) {
    const warning = a.isAvailable ? lowSuccess(a) : null;
    if (warning) {
      badges.push(h("span", { class: "badge warn" }, "Failing requests"));
      notes.push(h("div", { class: "state-note warning" }, warning));
    } else badges.push(a.isAvailable ? h("span", { class: "badge ok" }, "Ready") : h("span", { class: "badge" }, "Unavailable"));
  }
  return h("td", {}, h("div", { class: "state" }, badges, notes));
}

function tokenText(a) {
  switch (a.tokenStatus) {
    case "api-key": return "API key";
    case "missing": return "No credentials";
    case "expired": return a.hasRefreshToken ? "Token expired (refreshes on use)" : "Token expired";
    default: return a.tokenExpiresAt ? `Token expires ${fmtRelative(a.tokenExpiresAt)}` : "Token valid";
  }
}

function usageCell(a) {
  if (!a.usageData?.length) {
    return h("td", { class: "muted small" }, a.autoRefreshApplies || a.provider === "nanogpt" || a.provider === "minimax"
      ? "No usage reading yet" : "No usage windows");
  }
  return h("td", {}, h("div", { class: "usage", title: a.usageFetchedAt ? `Read ${fmtRelative(a.usageFetchedAt)}` : "" }, a.usageData.map((w) => {
    const pct = Math.max(0, Math.min(100, w.utilization));
    const level = w.utilization >= 90 ? "bad" : w.utilization >= 70 ? "warn" : "";
    const bar = h("span");
    bar.style.width = `${pct}%`;
    return h("div", { class: "usage-row", dataset: { window: w.key } },
      h("span", { class: "usage-label" }, windowLabel(w.key)),
      h("div", { class: `bar ${level}`, role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(w.utilization), "aria-label": `${windowLabel(w.key)} usage` }, bar),
      h("span", { class: "usage-value" }, `${Math.round(w.utilization)}%`),
      w.resetsAt ? h("span", { class: "usage-reset" }, `resets ${fmtRelative(w.resetsAt)}`) : null);
  })));
}

function toggle(a, label, field, path, help) {
  return h("label", { class: "check", title: help },
    h("input", { type: "checkbox", checked: a[field], onchange: async (event) => {
      const enabled = event.target.checked;
      try {
        await post(`/api/accounts/${encodeURIComponent(a.id)}/${path}`, { enabled });
        toast(`${label} ${enabled ? "on" : "off"} for ${a.name}.`);
      } catch (error) {
        event.target.checked = !enabled;
        toast(error.message, "error");
      }
    } }),
    label);
}

function action(label, handler, cls = "button small") {
  return h("button", { type: "button", class: cls, onclick: async (event) => {
    const button = event.currentTarget;
    button.closest("details")?.removeAttribute("open");
    button.disabled = true;
    try {
      await handler();
    } catch (error) {
      toast(error.message, "error");
    } finally {
      button.disabled = false;
    }
  } }, label);
}

/** Only the actions that apply: resetting a limit that is not there, or auto-refreshing an
 * API key, would do nothing. */
function actionsCell(a) {
  const id = encodeURIComponent(a.id);
  const isOAuth = a.provider === "anthropic";
  const more = h("details", { class: "row-menu" },
    h("summary", { class: "button small ghost", "aria-label": `More actions for ${a.name}` }, "More ▾"),
    h("div", { class: "row-menu-items" },
      isOAuth && !needsLogin(a) ? action("Re-login", () => startReauth(a)) : null,
      action("Rename", () => edit({
        title: `Rename ${a.name}`,
        fields: [{ name: "name", label: "New name", value: a.name, required: true }],
        submit: (v) => post(`/api/accounts/${id}/rename`, { name: v.name.trim() }),
        done: "Account renamed.",
      })),
      action("Priority", () => edit({
        title: `Priority of ${a.name}`,
        help: "0–100; accounts with lower numbers are tried first.",
        fields: [{ name: "priority", label: "Priority", type: "number", min: 0, max: 100, value: a.priority, required: true }],
        submit: (v) => post(`/api/accounts/${id}/priority`, { priority: Number(v.priority) }),
        done: "Priority saved.",
      })),
      action("Endpoint", () => edit({
        title: `Endpoint of ${a.name}`,
        help: "Leave empty to use the provider's default endpoint.",
        fields: [{ name: "customEndpoint", label: "Endpoint URL", type: "url", value: a.customEndpoint ?? "" }],
        submit: (v) => post(`/api/accounts/${id}/custom-endpoint`, { customEndpoint: v.customEndpoint.trim() || null }),
        done: "Endpoint saved.",
      })),
      action("Model mappings", () => edit({
        title: `Model mappings of ${a.name}`,
        help: "One “requested = upstream” per line; a family (opus, sonnet, haiku) or an exact model on the left, one or more models (comma-separated) on the right. Empty removes every mapping.",
        fields: [{ name: "modelMappings", label: "Mappings", type: "textarea", value: mappingsText(a.modelMappings) }],
        submit: (v) => post(`/api/accounts/${id}/model-mappings`, { modelMappings: parseMappings(v.modelMappings) ?? {} }),
        done: "Model mappings saved.",
      })),
      a.autoFallbackApplies || a.autoRefreshApplies ? h("hr") : null,
      a.autoFallbackApplies ? toggle(a, "Auto-fallback", "autoFallbackEnabled", "auto-fallback", "Switch back to this account as soon as its usage window resets") : null,
      a.autoRefreshApplies ? toggle(a, "Auto-refresh", "autoRefreshEnabled", "auto-refresh", "Start a new usage window automatically when the old one resets") : null,
      h("hr"),
      action("Delete…", () => edit({
        title: `Delete ${a.name}`,
        help: "The account and its credentials are removed; its past requests stay in the statistics. Type the account's name to confirm.",
        fields: [{ name: "confirm", label: "Account name", value: "", required: true, placeholder: a.name }],
        submit: async (v) => {
          if (v.confirm !== a.name) throw new Error(`Type “${a.name}” exactly to delete this account.`);
          await api(`/api/accounts/${id}`, { method: "DELETE", body: { confirm: v.confirm } });
        },
        done: `${a.name} deleted.`,
        danger: true,
      }), "button small danger")));
  return h("td", { class: "actions-col" }, h("div", { class: "row-actions" },
    limited(a) ? action("Reset rate limit", async () => {
      await post(`/api/accounts/${id}/force-reset-rate-limit`);
      toast(`Rate-limit state of ${a.name} cleared; its usage is being read again.`);
      await load();
    }) : null,
    a.paused
      ? action("Resume", async () => { await post(`/api/accounts/${id}/resume`); toast(`${a.name} resumed.`); await load(); })
      : action("Pause", async () => { await post(`/api/accounts/${id}/pause`); toast(`${a.name} paused.`); await load(); }),
    more));
}

function accountRow(a) {
  const mappings = Object.keys(a.modelMappings ?? {}).length;
  const classes = ["account", needsLogin(a) || ATTENTION[a.state] ? "needs-attention" : "", lowSuccess(a) && a.isAvailable ? "warned" : ""];
  return h("tr", { class: classes.filter(Boolean).join(" "), dataset: { accountId: a.id, accountName: a.name } },
    h("td", {},
      h("div", { class: "account-name" }, a.name),
      h("div", { class: "account-sub" },
        h("span", { class: "badge accent", title: a.provider }, typeLabels.get(a.provider) ?? a.provider),
        h("span", {}, `Priority ${a.priority}`),
        h("span", { title: a.tokenExpiresAt ? fmtDateTime(a.tokenExpiresAt) : "" }, tokenText(a))),
      a.customEndpoint ? h("div", { class: "account-sub mono", title: "Endpoint" }, a.customEndpoint) : null,
      mappings ? h("div", { class: "account-sub", title: mappingsText(a.modelMappings) }, `${mappings} model mapping${mappings > 1 ? "s" : ""}`) : null),
    stateCell(a),
    usageCell(a),
    h("td", { class: "num" }, fmtInt(a.totalRequests), h("div", { class: "muted small" }, `${fmtInt(a.sessionInfo?.requestCount ?? 0)} this session`)),
    h("td", { class: "num" }, recent.has(a.name) ? fmtPct(recent.get(a.name).successRate) : "–",
      recent.has(a.name) ? h("div", { class: "muted small" }, `of ${fmtInt(recent.get(a.name).requests)}`) : null),
    h("td", { class: "nowrap", title: a.lastUsed ?? "" }, fmtRelative(a.lastUsed)),
    actionsCell(a));
}

function render() {
  const tbody = $("#accounts-table tbody");
  if (!accounts.length) {
    fill(tbody, h("tr", { class: "empty" }, h("td", { colspan: 7 }, h("div", { class: "empty-state" },
      h("h2", {}, "No accounts yet"),
      h("p", {}, "Add a Claude subscription, an Anthropic Console key or another provider, and the proxy starts routing to it."),
      h("button", { type: "button", class: "button primary", onclick: openAdd }, "Add account")))));
    return;
  }
  fill(tbody, [...accounts].sort((x, y) => x.priority - y.priority || x.name.localeCompare(y.name)).map(accountRow));
}

async function load() {
  const [list, analytics] = await Promise.all([api("/api/accounts"), api("/api/analytics?range=1h")]);
  accounts = list;
  recent = new Map(analytics.accountPerformance.map((r) => [r.name, r]));
  render();
}

// ------------------------------------------------------------------ generic edit dialog

function edit({ title, help, fields, submit, done, danger = false }) {
  const dialog = $("#edit-dialog");
  const form = $("#edit-form");
  $("#edit-title").textContent = title;
  $("[data-role=help]", form).textContent = help ?? "";
  formError(form, null);
  fill($("[data-role=fields]", form), fields.map((f) => h("label", {}, f.label,
    f.type === "textarea"
      ? h("textarea", { name: f.name, class: "input mono", rows: 5, value: f.value })
      : h("input", { name: f.name, class: "input", type: f.type ?? "text", value: f.value, min: f.min, max: f.max, required: f.required, placeholder: f.placeholder, autocomplete: "off" }))));
  const submitButton = $("[data-role=submit]", form);
  submitButton.textContent = danger ? "Delete" : "Save";
  submitButton.className = danger ? "button danger" : "button primary";
  form.onsubmit = async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    const ok = await busy(form, async () => {
      await submit(values);
      return true;
    });
    if (ok) {
      dialog.close();
      toast(done);
      await load();
    }
  };
  dialog.showModal();
  form.querySelector("input, textarea")?.focus();
}

// ------------------------------------------------------------------ adding accounts

/** A declared field's input name: its name in camelCase (api_key → apiKey), as the API names it. */
function inputName(field) {
  return field.name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

async function loadAccountTypes() {
  const { providers } = await api("/api/providers");
  typeLabels = typeLabelsOf(providers);
  addChoices = new Map();
  const options = [];
  const add = (value, label, provider, login, fields) => {
    addChoices.set(value, { provider, login, fields });
    options.push(h("option", { value }, label));
  };
  for (const p of providers) {
    const source = p.builtin ? "" : ` · plugin ${p.distribution ?? p.provider}`;
    const withoutKey = p.fields.filter((f) => f.name !== "api_key");
    if (p.loginOnly) {
      add(p.type, `${p.displayName} · browser login${source}`, p, p.login, withoutKey);
      continue;
    }
    if (p.login) add(`login:${p.type}`, `${p.displayName} · browser login (creates an API key)`, p, p.login, withoutKey);
    add(p.type, `${p.displayName}${source}`, p, null, p.fields);
  }
  fill($("#add-account-form").elements.type, options);
}

function fieldInput(field) {
  const common = { name: inputName(field), class: "input", required: field.required, autocomplete: "off", dataset: { field: field.name } };
  if (field.kind === "choice") {
    return h("select", { ...common, class: "select" }, field.choices.map((c) => h("option", { value: c, selected: c === field.default }, c)));
  }
  const types = { secret: "password", url: "url", text: "text" };
  return h("input", { ...common, type: types[field.kind] ?? "text", value: field.default ?? "", spellcheck: field.kind === "secret" ? "false" : null, placeholder: field.kind === "url" ? "https://…" : null });
}

function showFieldsFor(value) {
  const form = $("#add-account-form");
  const choice = addChoices.get(value);
  if (!choice) return;
  fill($("[data-role=type-fields]", form), choice.fields.map((f) => h("div", { dataset: { for: inputName(f) } },
    h("label", {}, h("span", {}, f.label, f.required ? null : h("span", { class: "optional" }, " (optional)")), fieldInput(f)),
    f.help ? h("p", { class: "hint" }, f.help) : null)));
  for (const group of $$("[data-for=modelMappings]", form)) group.hidden = Boolean(choice.login);
  $("[data-role=submit]", form).textContent = choice.login ? "Continue to login" : "Add account";
}

function openAdd() {
  const form = $("#add-account-form");
  form.reset();
  formError(form, null);
  showFieldsFor(form.elements.type.value);
  $("#add-account-dialog").showModal();
  form.elements.name.focus();
}

function addBody(form, choice) {
  const f = form.elements;
  const name = f.name.value.trim();
  if (!name) throw new Error("Give the account a name.");
  if (!/^[A-Za-z0-9 ._-]{1,100}$/.test(name)) throw new Error("The name may use letters, digits, spaces, “-”, “_” and “.” (at most 100).");
  const priority = Number(f.priority.value);
  if (!Number.isInteger(priority) || priority < 0 || priority > 100) throw new Error("Priority is a whole number from 0 to 100.");
  const body = { name, priority };
  const fields = {};
  for (const field of choice.fields) {
    const value = f[inputName(field)].value.trim();
    if (!value && field.required) throw new Error(`Fill in “${field.label}”.`);
    if (value) fields[field.name] = value;
  }
  if (Object.keys(fields).length) body.fields = fields;
  if (!choice.login) {
    const mappings = parseMappings(f.modelMappings.value);
    if (mappings) body.modelMappings = mappings;
  }
  return body;
}

async function submitAdd(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const choice = addChoices.get(form.elements.type.value);
  await busy(form, async () => {
    const body = addBody(form, choice);
    if (choice.login) {
      const endpoint = body.fields?.custom_endpoint;
      const init = await post("/api/oauth/init", { name: body.name, mode: choice.provider.type, priority: body.priority, ...(endpoint ? { customEndpoint: endpoint } : {}) });
      $("#add-account-dialog").close();
      openOAuth(init, "/api/oauth/callback", `Log in: ${body.name}`);
      return;
    }
    const added = await post(`/api/accounts/${encodeURIComponent(choice.provider.type)}`, body);
    $("#add-account-dialog").close();
    toast(`${added.name} added.`);
    await load();
  });
}

// ------------------------------------------------------------------ OAuth login and re-login

function openOAuth(init, callbackPath, title) {
  const dialog = $("#oauth-dialog");
  const form = $("#oauth-form");
  form.reset();
  formError(form, null);
  $("#oauth-title").textContent = title;
  $("#oauth-link").href = init.authUrl;
  $("#oauth-url").textContent = init.authUrl;
  form.onsubmit = async (event) => {
    event.preventDefault();
    const code = form.elements.code.value.trim();
    if (!code) {
      formError(form, "Paste the code Anthropic showed you (code#state).");
      return;
    }
    const result = await busy(form, () => post(callbackPath, { sessionId: init.sessionId, code }));
    if (result) {
      dialog.close();
      toast(`${result.account?.name ?? "Account"} is logged in.`);
      await load();
    }
  };
  dialog.showModal();
}

async function startReauth(a) {
  const init = await post("/api/oauth/anthropic/reauth/init", { accountId: a.id });
  openOAuth(init, "/api/oauth/anthropic/reauth/callback", `Log in again: ${a.name}`);
}

export async function start() {
  const form = $("#add-account-form");
  form.elements.type.addEventListener("change", () => {
    showFieldsFor(form.elements.type.value);
    formError(form, null);
  });
  form.addEventListener("submit", submitAdd);
  $("#add-account-button").addEventListener("click", openAdd);
  await Promise.all([load(), loadAccountTypes()]);
  render(); // again, now with the types' labels
  document.body.dataset.ready = "true";
  // Close an open row menu when clicking elsewhere, or on Escape.
  document.addEventListener("click", (event) => {
    for (const d of $$(".row-menu[open]")) if (!d.contains(event.target)) d.open = false;
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") for (const d of $$(".row-menu[open]")) d.open = false;
  });
  setInterval(() => {
    // Don't redraw under an open dialog or menu.
    if (document.visibilityState !== "visible" || document.querySelector("dialog[open], .row-menu[open]")) return;
    load().catch(() => {});
  }, REFRESH_MS);
}
