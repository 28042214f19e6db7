// Small SVG charts, written here rather than taken from a charting library: the dashboard needs one
// cumulative-spend chart and proportion bars, no CDN may be used, and a library would ship more code than
// the whole dashboard. Every series has a text label and its own dash pattern, so colour is never needed.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function usd(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const size = Math.abs(value);
  const digits = size >= 100 ? 0 : size >= 1 ? 2 : size >= 0.01 || size === 0 ? 4 : 6;
  return "$" + value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// days: [{day: "2026-12-01", cost: 1.23}] for every day of the period so far (zeros included);
// periodDays: the period's length in days; budget: amount or null; forecast: projected total or null.
const DASHES = ["1 4", "9 3", "9 3 2 3", "4 4", "14 4 2 4 2 4"];

// series: [{label, days}] drawn as cumulative lines of their own beside the total (the top spenders by team,
// model or feature), each with a dash pattern and its label at the line's end.
export function spendChart(days, { periodDays, budget, forecast, title, series = [] }) {
  const width = 760, height = 260, left = 64, right = 130, top = 16, bottom = 34;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart" });
  svg.appendChild(el("title", {}, title));
  let running = 0;
  const cumulative = days.map((d) => (running += d.cost));
  const spent = running;
  const top_value = Math.max(spent, forecast || 0, budget || 0, 1e-6) * 1.08;
  const plotW = width - left - right, plotH = height - top - bottom;
  const x = (i) => left + (plotW * i) / Math.max(periodDays, 1);
  const y = (v) => top + plotH - (plotH * v) / top_value;
  svg.appendChild(el("line", { class: "axis", x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH }));
  svg.appendChild(el("line", { class: "axis", x1: left, y1: top, x2: left, y2: top + plotH }));
  for (const fraction of [0, 0.5, 1]) {
    const v = top_value * fraction;
    svg.appendChild(el("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, usd(v)));
  }
  const maxDaily = Math.max(...days.map((d) => d.cost), 1e-9);
  const barW = Math.max(1, plotW / Math.max(periodDays, 1) - 2);
  days.forEach((d, i) => {
    const h = (plotH * 0.35 * d.cost) / maxDaily;
    const bar = el("rect", { class: "daily", x: x(i) + 1, y: top + plotH - h, width: barW, height: h });
    bar.appendChild(el("title", {}, `${d.day}: ${usd(d.cost)}`));
    svg.appendChild(bar);
  });
  if (days.length) {
    svg.appendChild(el("text", { x: left, y: height - 8 }, days[0].day));
    const points = cumulative.map((v, i) => `${x(i + 1)},${y(v)}`);
    svg.appendChild(el("polyline", { class: "spent", points: `${x(0)},${y(0)} ${points.join(" ")}` }));
    svg.appendChild(el("text", { x: x(days.length) + 6, y: y(spent) + 4 }, `spent ${usd(spent)}`));
  }
  series.forEach((s, n) => {
    let total = 0;
    const points = s.days.map((d, i) => `${x(i + 1)},${y((total += d.cost))}`);
    const line = el("polyline", { class: "series", "stroke-dasharray": DASHES[n % DASHES.length], points: `${x(0)},${y(0)} ${points.join(" ")}` });
    line.appendChild(el("title", {}, `${s.label}: ${usd(total)}`));
    svg.appendChild(line);
  });
  if (forecast !== null && forecast !== undefined) {
    svg.appendChild(el("line", { class: "forecast", x1: x(days.length), y1: y(spent), x2: x(periodDays), y2: y(forecast) }));
    svg.appendChild(el("text", { x: x(periodDays) + 6, y: y(forecast) + 4 }, `forecast ${usd(forecast)}`));
  }
  if (budget) {
    svg.appendChild(el("line", { class: "budget", x1: left, y1: y(budget), x2: left + plotW, y2: y(budget) }));
    svg.appendChild(el("text", { x: left + plotW + 6, y: y(budget) - 6 }, `budget ${usd(budget)}`));
  }
  return svg;
}

// The key to the series' lines: a sample of each line's dash pattern, its name and its spend.
export function seriesLegend(series) {
  const list = document.createElement("ul");
  list.className = "legend";
  series.forEach((s, n) => {
    const item = document.createElement("li");
    const sample = el("svg", { width: 40, height: 10, "aria-hidden": "true" });
    sample.appendChild(el("line", { class: "series", x1: 0, y1: 5, x2: 40, y2: 5, "stroke-dasharray": DASHES[n % DASHES.length] }));
    const text = document.createElement("span");
    text.className = "series-label";
    text.textContent = `${s.label} ${usd(s.days.reduce((a, d) => a + d.cost, 0))}`;
    item.append(sample, text);
    list.appendChild(item);
  });
  return list;
}

// A cell with a proportion bar and the value as text.
export function proportion(value, max) {
  const wrap = document.createElement("div");
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.style.width = `${Math.max(0, Math.min(100, (100 * value) / (max || 1)))}%`;
  wrap.appendChild(bar);
  return wrap;
}
