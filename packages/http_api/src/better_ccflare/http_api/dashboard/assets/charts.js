// Charts: Chart.js (vendored, see vendor/README.md) themed from the stylesheet's colours, so
// they follow the light and dark themes, including a switch while the page is open.

import "./vendor/chart.umd.min.js";

const Chart = globalThis.Chart;
const charts = new Set();

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export function seriesColor(index) {
  return css(`--series-${(index % 8) + 1}`);
}

/** A colour with transparency, for area fills: "#rrggbb" + alpha. */
export function fade(color, alpha = 0.18) {
  if (!color.startsWith("#") || color.length !== 7) return color;
  return `${color}${Math.round(alpha * 255).toString(16).padStart(2, "0")}`;
}

function applyTheme() {
  Chart.defaults.color = css("--muted");
  Chart.defaults.borderColor = css("--grid");
  Chart.defaults.font.family = css("--sans");
  Chart.defaults.font.size = 12;
  Chart.defaults.plugins.tooltip.backgroundColor = css("--text");
  Chart.defaults.plugins.tooltip.titleColor = css("--bg");
  Chart.defaults.plugins.tooltip.bodyColor = css("--bg");
  Chart.defaults.plugins.legend.labels.boxWidth = 12;
  Chart.defaults.plugins.legend.labels.boxHeight = 12;
}
applyTheme();

// theme.js announces a change of the resolved theme (the operator's choice or the system's).
window.addEventListener("themechange", () => {
  applyTheme();
  for (const entry of charts) {
    entry.chart.destroy();
    entry.chart = new Chart(entry.canvas, entry.build());
  }
});

/**
 * A chart on `canvas` whose configuration comes from `build()` (called again when the colour
 * scheme changes). Returns a handle whose `set(build)` replaces the configuration and whose
 * `destroy()` removes it.
 */
export function chart(canvas, build) {
  const entry = { canvas, build, chart: new Chart(canvas, build()) };
  charts.add(entry);
  return {
    /** Remove the chart (its canvas is about to leave the page). */
    destroy() {
      entry.chart.destroy();
      charts.delete(entry);
    },
    set(nextBuild) {
      entry.build = nextBuild;
      const config = nextBuild();
      if (entry.chart.config.type === config.type) {
        entry.chart.data = config.data;
        entry.chart.options = config.options;
        entry.chart.update();
      } else {
        entry.chart.destroy();
        entry.chart = new Chart(canvas, config);
      }
    },
  };
}

/** Labels for bucket start times: clock time for minute/hour buckets, dates for days. */
export function bucketLabels(timestamps, bucket) {
  return timestamps.map((ts) => {
    const d = new Date(ts);
    if (bucket === "1d") return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
    const time = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    return bucket === "1h" && timestamps.length > 30
      ? `${d.toLocaleDateString(undefined, { month: "short", day: "numeric" })} ${time}`
      : time;
  });
}

const BUCKET_MS = { "1m": 60000, "5m": 300000, "15m": 900000, "1h": 3600000, "1d": 86400000 };
const RANGE_MS = { "1h": 3600000, "6h": 21600000, "24h": 86400000, "7d": 604800000, "30d": 2592000000 };

/**
 * Every bucket start in the range, so quiet periods show as zeros instead of being skipped.
 * The API returns only buckets that had requests.
 */
export function bucketGrid(range, bucket, now = Date.now()) {
  const step = BUCKET_MS[bucket];
  const span = RANGE_MS[range];
  if (!step || !span) return [];
  const grid = [];
  for (let t = Math.floor((now - span) / step) * step + step; t <= now; t += step) grid.push(t);
  return grid;
}

/** Align `series` ({ts, ...}) to `grid`, taking `pick(entry)` or 0 where a bucket is empty. */
export function onGrid(grid, series, pick, step) {
  const byBucket = new Map();
  for (const entry of series) byBucket.set(Math.floor(entry.ts / step) * step, entry);
  return grid.map((t) => {
    const entry = byBucket.get(t);
    return entry ? pick(entry) : 0;
  });
}

export { BUCKET_MS };

/** Options shared by the time charts: no animation flicker, compact axes, a shared tooltip. */
export function timeOptions({ y = {}, y2 = null, stacked = false } = {}) {
  const scales = {
    x: { stacked, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 18 } },
    y: { stacked, beginAtZero: true, ticks: { maxTicksLimit: 6, ...y.ticks }, title: y.title ? { display: true, text: y.title } : undefined },
  };
  if (y2) {
    scales.y2 = {
      position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
      ticks: { maxTicksLimit: 6, ...y2.ticks }, title: y2.title ? { display: true, text: y2.title } : undefined,
    };
  }
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: { duration: 250 },
    interaction: { mode: "index", intersect: false },
    plugins: { legend: { position: "bottom", align: "start" } },
    scales,
  };
}
