// Entry point of every page: shared chrome (API key button, dialogs), then the page's module.

import { ApiError, askForKey, forgetKey, storedKey } from "./api.js";
import { fill, h, labelCells, toast, wireDialogs } from "./dom.js";
import { DEFAULT_PERIOD, PERIODS } from "./format.js";

const keyButton = document.getElementById("api-key-button");
const keyDialog = document.getElementById("api-key-dialog");

function showKeyState() {
  keyButton.textContent = storedKey() ? "API key ✓" : "API key";
  keyButton.title = storedKey() ? "An API key is stored in this browser" : "No API key stored";
}

keyButton.addEventListener("click", () => {
  askForKey(null).then(() => location.reload(), () => {});
});
keyDialog.querySelector("[data-action=forget-key]").addEventListener("click", () => {
  forgetKey();
  showKeyState();
  keyDialog.close();
  toast("The stored API key was removed from this browser.");
});
keyDialog.querySelector("[data-action=close]").addEventListener("click", () => keyDialog.close());
showKeyState();
wireDialogs(document.getElementById("main"));

// The theme (theme.js applied it before the first paint): system, light or dark.
const themeSelect = document.getElementById("theme-select");
themeSelect.value = window.dashboardTheme.choice();
themeSelect.addEventListener("change", () => window.dashboardTheme.set(themeSelect.value));

// On a narrow screen the sections are behind a menu button.
const topbar = document.querySelector(".topbar");
const navToggle = document.getElementById("nav-toggle");
navToggle.addEventListener("click", () => {
  const open = !topbar.hasAttribute("data-nav-open");
  topbar.toggleAttribute("data-nav-open", open);
  navToggle.setAttribute("aria-expanded", String(open));
});

// Every period picker offers the same periods, filled before the page's module reads them.
for (const select of document.querySelectorAll("select[data-periods]")) {
  fill(select, PERIODS.map(([value, label]) => h("option", { value, selected: value === DEFAULT_PERIOD }, label)));
}

// Stacked tables (narrow screens) label each cell with its column's header.
labelCells(document.getElementById("main"));
new MutationObserver(() => labelCells(document.getElementById("main")))
  .observe(document.getElementById("main"), { childList: true, subtree: true });

const page = document.body.dataset.page;
try {
  const module = await import(`./pages/${page}.js`);
  await module.start();
} catch (error) {
  toast(error.message ?? String(error), "error");
  // API errors are shown above; anything else is a bug worth a console entry.
  if (!(error instanceof ApiError)) throw error;
}
showKeyState();
