// Settings: the load-balancing strategy, retention and payload storage, and the config in force.

import { api, post } from "../api.js";
import { $, busy, emptyRow, fill, h, toast } from "../dom.js";

async function loadStrategy() {
  const [current, strategies] = await Promise.all([api("/api/config/strategy"), api("/api/strategies")]);
  // Each description comes from the strategy's own code (Strategy.summary), so it cannot drift.
  fill($("#strategy-options"), strategies.map((s) => h("label", { dataset: { strategy: s.name } },
    h("input", { type: "radio", name: "strategy", value: s.name, checked: s.name === current.strategy }),
    h("span", {}, h("strong", {}, s.name), h("span", { class: "desc" }, s.description)))));
  $("#strategy-source").textContent = current.strategySource ? `Currently set by: ${current.strategySource}.` : "";
}

async function loadRetention() {
  const r = await api("/api/config/retention");
  const f = $("#retention-form").elements;
  f.storePayloads.checked = r.storePayloads;
  f.payloadDays.value = r.payloadDays;
  f.requestDays.value = r.requestDays;
}

function display(value) {
  if (typeof value === "boolean") return value ? "yes" : "no";
  return value === null || value === undefined ? "–" : String(value);
}

async function loadConfig() {
  const config = await api("/api/config");
  const sources = config.sources ?? {};
  const entries = Object.entries(config).filter(([k]) => k !== "sources");
  const tbody = $("#config-table tbody");
  if (!entries.length) emptyRow(tbody, "Nothing to show.");
  else fill(tbody, entries.map(([k, v]) => h("tr", {},
    h("td", { class: "mono" }, k),
    h("td", {}, display(v), sources[k] ? h("span", { class: "badge", title: "Where this value came from" }, sources[k]) : null))));
}

export async function start() {
  $("#strategy-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const strategy = new FormData(form).get("strategy");
    const ok = await busy(form, () => post("/api/config/strategy", { strategy }));
    if (ok) {
      toast(`Strategy is now ${strategy}.`);
      await Promise.all([loadStrategy(), loadConfig()]);
    }
  });
  $("#retention-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const f = form.elements;
    const ok = await busy(form, () => post("/api/config/retention", {
      storePayloads: f.storePayloads.checked,
      payloadDays: Number(f.payloadDays.value),
      requestDays: Number(f.requestDays.value),
    }));
    if (ok) {
      toast("Retention saved.");
      await Promise.all([loadRetention(), loadConfig()]);
    }
  });
  await Promise.all([loadStrategy(), loadRetention(), loadConfig()]);
  document.body.dataset.ready = "true";
}
