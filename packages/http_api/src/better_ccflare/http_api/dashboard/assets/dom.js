// Building DOM without innerHTML: every value from the API becomes a text node, never markup.

/**
 * Create an element. `attrs` keys: `class`, `dataset` (object), `on<event>` (listener),
 * booleans (set when true), anything else as an attribute. Children may be nodes, strings,
 * numbers, arrays, or null/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table body showing one muted message across all columns. */
export function emptyRow(tbody, message) {
  const columns = tbody.closest("table")?.querySelectorAll("thead th").length ?? 1;
  fill(tbody, h("tr", { class: "empty" }, h("td", { colspan: columns }, message)));
}

/** Show a short message in the corner; errors stay a little longer. */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const el = h("div", { class: `toast ${kind}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 7000 : 3500);
}

/** Show or hide a form's error paragraph (`[data-role=error]`). */
export function formError(form, message) {
  const p = form.querySelector("[data-role=error]");
  if (!p) return;
  p.textContent = message ?? "";
  p.hidden = !message;
}

/** Run `action` with the form's submit button disabled, showing any failure in the form. */
export async function busy(form, action) {
  const buttons = [...form.querySelectorAll("button[type=submit]")];
  buttons.forEach((b) => { b.disabled = true; });
  formError(form, null);
  try {
    return await action();
  } catch (error) {
    formError(form, error.message ?? String(error));
    return undefined;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

/** Every `[data-action=close]` inside a dialog closes it. */
export function wireDialogs(root = document) {
  for (const dialog of root.querySelectorAll("dialog")) {
    dialog.addEventListener("click", (event) => {
      if (event.target.closest("[data-action=close]")) dialog.close();
      // A click on the backdrop lands on the dialog element itself.
      else if (event.target === dialog) dialog.close();
    });
  }
}

/** Show the state of a live stream in the top bar. */
export function liveStatus(state) {
  const el = document.getElementById("live-status");
  if (!el) return;
  el.hidden = false;
  el.dataset.state = state;
  el.textContent = { live: "Live", reconnecting: "Reconnecting…", stopped: "Not live" }[state] ?? state;
}

/**
 * Give every body cell of the tables under `root` its column's header as `data-label`, which
 * the narrow-screen stylesheet shows beside the value. Cells already labelled are skipped.
 */
export function labelCells(root = document) {
  for (const table of root.querySelectorAll("table.table")) {
    const headers = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    if (!headers.length) continue;
    for (const row of table.tBodies[0]?.rows ?? []) {
      [...row.cells].forEach((cell, i) => {
        if (!cell.hasAttribute("data-label")) cell.setAttribute("data-label", headers[i] ?? "");
      });
    }
  }
}
