// The colour theme, applied before the page paints (a classic script in <head>, so no flash).
// The choice is "auto" (follow the system), "light" or "dark", kept in localStorage; the
// stylesheet reads only the resolved theme, <html data-theme="light|dark">. Modules listen for
// the "themechange" event on window (the charts redraw their colours).

(() => {
  const KEY = "better-ccflare.theme";
  const CHOICES = ["auto", "light", "dark"];
  const system = matchMedia("(prefers-color-scheme: dark)");

  function choice() {
    const stored = localStorage.getItem(KEY);
    return CHOICES.includes(stored) ? stored : "auto";
  }

  function apply() {
    const chosen = choice();
    const theme = chosen === "auto" ? (system.matches ? "dark" : "light") : chosen;
    const root = document.documentElement;
    const changed = root.dataset.theme !== theme;
    root.dataset.theme = theme;
    root.dataset.themeChoice = chosen;
    if (changed) window.dispatchEvent(new Event("themechange"));
  }

  function set(chosen) {
    if (!CHOICES.includes(chosen)) return;
    if (chosen === "auto") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, chosen);
    apply();
  }

  system.addEventListener("change", apply);
  window.addEventListener("storage", (event) => { if (event.key === KEY) apply(); });
  window.dashboardTheme = { choice, set };
  apply();
})();
