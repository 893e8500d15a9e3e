// API keys: generate (the key is shown once), enable, disable, change role, delete.

import { api, post, storeKey, storedKey } from "../api.js";
import { $, emptyRow, fill, h, toast } from "../dom.js";
import { fmtDateTime, fmtInt, fmtRelative } from "../format.js";

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
    h("td", { class: "nowrap" }, fmtDateTime(k.createdAt)),
    h("td", { class: "nowrap" }, fmtRelative(k.lastUsed)),
    h("td", { class: "num" }, fmtInt(k.usageCount)),
    h("td", {}, h("div", { class: "row-actions" },
      k.isActive
        ? button("Disable", () => post(keyPath(k, "/disable")))
        : button("Enable", () => post(keyPath(k, "/enable"))),
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
  $("#dismiss-new-key").addEventListener("click", () => {
    // Forget the secret as soon as the operator is done with it.
    $("#new-key-value").textContent = "";
    $("#new-key-result").hidden = true;
  });
  await load();
  document.body.dataset.ready = "true";
}
