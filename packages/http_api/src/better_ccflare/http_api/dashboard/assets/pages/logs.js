// Logs: the recent history, then a live tail from /api/logs/stream.

import { api, follow } from "../api.js";
import { $, fill, h, liveStatus } from "../dom.js";

const MAX_LINES = 5000;
// The server writes WARN (the reference's name); WARNING and CRITICAL are accepted as well.
const LEVELS = { DEBUG: 10, INFO: 20, WARN: 30, WARNING: 30, ERROR: 40, CRITICAL: 50, FATAL: 50 };
const lines = [];

function time(ts) {
  const d = new Date(ts);
  return `${d.toLocaleTimeString(undefined, { hour12: false })}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

function visible(line) {
  if ((LEVELS[line.level] ?? 0) < LEVELS[$("#log-level").value]) return false;
  const needle = $("#log-filter").value.trim().toLowerCase();
  return !needle || `${line.logger} ${line.msg} ${line.data ? JSON.stringify(line.data) : ""}`.toLowerCase().includes(needle);
}

function lineView(line) {
  return h("div", { class: "log-line" },
    h("span", { class: "log-time", title: new Date(line.ts).toISOString() }, time(line.ts)),
    h("span", { class: `log-level ${line.level}` }, line.level),
    h("span", { class: "log-logger", title: line.logger ?? "" }, line.logger ?? ""),
    h("span", { class: "log-msg" }, line.msg,
      line.data && Object.keys(line.data).length ? h("span", { class: "log-data" }, ` ${JSON.stringify(line.data)}`) : null,
      line.exc ? h("pre", { class: "code" }, line.exc) : null));
}

function atBottom(view) {
  return view.scrollHeight - view.scrollTop - view.clientHeight < 40;
}

function scroll(view) {
  if ($("#log-follow").checked) view.scrollTop = view.scrollHeight;
}

function render() {
  const view = $("#log-view");
  const shown = lines.filter(visible);
  if (!shown.length) fill(view, h("div", { class: "log-empty" }, lines.length ? "No line matches." : "No log lines yet."));
  else fill(view, shown.map(lineView));
  scroll(view);
}

function add(line) {
  lines.push(line);
  if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
  if (!visible(line)) return;
  const view = $("#log-view");
  view.querySelector(".log-empty")?.remove();
  view.append(lineView(line));
  while (view.childElementCount > MAX_LINES) view.firstElementChild.remove();
  scroll(view);
}

export async function start() {
  for (const id of ["#log-level", "#log-filter"]) $(id).addEventListener("input", render);
  $("#log-clear").addEventListener("click", () => {
    lines.length = 0;
    render();
  });
  const view = $("#log-view");
  // Scrolling up to read stops following; scrolling back to the bottom resumes it.
  view.addEventListener("scroll", () => { $("#log-follow").checked = atBottom(view); });
  lines.push(...(await api("/api/logs/history?limit=1000")));
  render();
  follow("/api/logs/stream", ({ data }) => {
    try {
      const line = JSON.parse(data);
      if (line.msg !== undefined) add(line);
    } catch {
      // Not a log line (the stream's greeting).
    }
  }, liveStatus);
  document.body.dataset.ready = "true";
}
