// Agents: the subagents the server discovered, and setting or clearing each one's model.

import { api, post } from "../api.js";
import { $, emptyRow, fill, h, toast } from "../dom.js";
import { fmtRelative } from "../format.js";

function preferencePath(a) {
  return `/api/agents/${encodeURIComponent(a.id)}/preference`;
}

async function act(form, action, done) {
  form.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  try {
    await action();
    toast(done);
  } catch (error) {
    toast(error.message, "error");
  }
  await load();
}

function modelForm(a) {
  const input = h("input", {
    name: "model", class: "input small", value: a.model ?? "", placeholder: a.fileModel ?? "model",
    "aria-label": `Model for ${a.id}`, autocomplete: "off",
  });
  const set = () => {
    const model = input.value.trim();
    return act(form, () => post(preferencePath(a), { model }), `${a.id} now uses ${model}.`);
  };
  const clear = () => act(form, () => api(preferencePath(a), { method: "DELETE" }),
    `${a.id} now uses the model the client asks for.`);
  const form = h("form", { class: "row-actions", novalidate: true,
    onsubmit: (event) => { event.preventDefault(); set(); } },
    input,
    h("button", { type: "submit", class: "button small" }, "Set"),
    a.model && h("button", { type: "button", class: "button small", onclick: clear }, "Clear"));
  return form;
}

function row(a) {
  const where = a.origin === "workspace" ? a.workspace : a.origin === "global" ? "~/.claude/agents" : "no file";
  return h("tr", { dataset: { agent: a.id } },
    h("td", {}, h("strong", {}, a.id), a.description && h("div", { class: "muted" }, a.description)),
    h("td", { title: a.path ?? "" }, h("span", { class: a.origin === "preference-only" ? "badge warn" : "badge" }, a.origin), " ", h("span", { class: "muted" }, where)),
    h("td", { class: "mono" }, a.fileModel ?? "–"),
    h("td", { class: "mono", dataset: { role: "preferred" } }, a.model ?? "as the client asks"),
    h("td", { class: "nowrap" }, a.updatedAt ? fmtRelative(a.updatedAt) : "–"),
    h("td", {}, modelForm(a)));
}

async function load() {
  const { agents } = await api("/api/agents");
  const tbody = $("#agents-table tbody");
  if (!agents.length) emptyRow(tbody, "No agents: none in ~/.claude/agents or a registered workspace, and no preferences.");
  else fill(tbody, agents.map(row));
}

export async function start() {
  await load();
  document.body.dataset.ready = "true";
}
