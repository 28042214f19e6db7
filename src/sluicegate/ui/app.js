// The dashboard: signs in with an admin key kept in this tab (sessionStorage), then reads and changes
// everything through the admin API, whose permission checks decide what each role sees and may do.
import { proportion, seriesLegend, spendChart, usd } from "./charts.js";

const main = document.getElementById("main");
const session = {
  key: sessionStorage.getItem("sg-key"),
  me: JSON.parse(sessionStorage.getItem("sg-me") || "null"),
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, { body, query } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  const headers = { authorization: `Bearer ${session.key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (response.status === 401) {
    signOut("That key is no longer accepted. Sign in again.");
    throw new ApiError(401, "signed out");
  }
  if (!response.ok) {
    const message = data?.error?.message || (typeof data?.detail === "string" ? data.detail : null) || `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  return node;
}

function table(columns, rows, { empty = "Nothing yet." } = {}) {
  if (!rows.length) return h("p", { class: "note" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null, scope: "col" }, c.label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => {
      const value = c.value(row);
      return h("td", { class: c.num ? "num" : null }, value instanceof Node ? value : String(value ?? "–"));
    })))));
}

const isMaster = () => session.me?.role === "master";
const canAdmin = () => ["master", "tenant_admin", "team_admin"].includes(session.me?.role);

// -- sign in / out ---------------------------------------------------------------------------------------

function showSignIn(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("who").textContent = "";
  main.replaceChildren(h("form", { id: "signin", class: "card narrow", onsubmit: signIn },
    h("h1", {}, "Sign in"),
    h("p", {}, "With the master key or an admin key (viewer, team admin, tenant admin). The key stays in this tab and is sent only to this gateway's admin API."),
    h("label", { for: "key" }, "Admin key"),
    h("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true }),
    h("button", { type: "submit" }, "Sign in"),
    h("p", { id: "signin-error", class: "error", role: "alert" }, message || "")));
}

async function signIn(event) {
  event.preventDefault();
  session.key = document.getElementById("key").value.trim();
  try {
    session.me = await api("GET", "/admin/me");
  } catch (error) {
    session.key = null;
    const text = error.status === 403 ? "This key has no admin role (an inference key cannot sign in)." : error.message;
    if (error.status !== 401) document.getElementById("signin-error").textContent = text;
    return;
  }
  sessionStorage.setItem("sg-key", session.key);
  sessionStorage.setItem("sg-me", JSON.stringify(session.me));
  if (!location.hash || location.hash === "#/") location.hash = "#/spend";
  route();
}

function signOut(message) {
  sessionStorage.removeItem("sg-key");
  sessionStorage.removeItem("sg-me");
  session.key = null;
  session.me = null;
  showSignIn(message);
}

// -- spend -----------------------------------------------------------------------------------------------

function periodBounds(period) {
  const now = new Date();
  if (period === "month") {
    const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    const end = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
    return { since: start.toISOString(), start, days: Math.round((end - start) / 86400000), forecastable: true };
  }
  const days = period === "7d" ? 7 : 30;
  const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - days + 1));
  return { since: start.toISOString(), start, days, forecastable: false };
}

function dayList(start, count) {
  const out = [];
  for (let i = 0; i < count; i++) out.push(new Date(start.getTime() + i * 86400000).toISOString().slice(0, 10));
  return out;
}

async function spendPage(params) {
  const period = params.get("period") || "month";
  const team = params.get("team") || (session.me.team && !["master", "tenant_admin"].includes(session.me.role) ? session.me.team : "");
  const bounds = periodBounds(period);
  const filter = { since: bounds.since, team };
  const teams = canAdmin() && ["master", "tenant_admin"].includes(session.me.role)
    ? await api("GET", "/admin/teams", { query: { tenant: isMaster() ? undefined : session.me.tenant } }).catch(() => [])
    : [];
  const [byDay, byTeam, byModel, byFeature, byKey, byUser] = await Promise.all(
    ["day", "team", "model", "feature", "key", "user"].map((by) => api("GET", "/admin/spend", { query: { by, ...filter } })));
  const costs = new Map(byDay.rows.map((r) => [r.group, Number(r.cost_usd)]));
  const today = new Date().toISOString().slice(0, 10);
  const elapsed = dayList(bounds.start, bounds.days).filter((d) => d <= today);
  const days = elapsed.map((day) => ({ day, cost: costs.get(day) || 0 }));
  const spent = days.reduce((a, d) => a + d.cost, 0);
  const requests = byDay.rows.reduce((a, r) => a + r.requests, 0);
  const teamRow = (Array.isArray(teams) ? teams : teams.teams || []).find((t) => t.id === team);
  const budget = teamRow && teamRow.budget_usd && (teamRow.budget_period || "monthly") === "monthly" ? Number(teamRow.budget_usd) : null;
  let forecast = null, runsOut = null;
  if (bounds.forecastable && days.length) {
    const now = new Date();
    const elapsedFraction = (now - bounds.start) / 86400000;
    const rate = spent / Math.max(elapsedFraction, 1 / 24);  // per day, from the burn so far
    forecast = rate * bounds.days;
    if (budget && forecast > budget && rate > 0) {
      runsOut = new Date(bounds.start.getTime() + (budget / rate) * 86400000).toISOString().slice(0, 10);
    }
  }
  const anomalies = await findAnomalies(byKey.rows, spent, filter);
  const split = params.get("split") || "";
  const series = split ? await splitSeries(split, { team: byTeam, model: byModel, feature: byFeature }[split].rows, filter, elapsed) : [];

  const controls = h("form", { class: "controls", onchange: (e) => {
    const form = e.currentTarget;
    const next = new URLSearchParams({ period: form.period.value });
    if (form.team && form.team.value) next.set("team", form.team.value);
    if (form.split.value) next.set("split", form.split.value);
    location.hash = `#/spend?${next}`;
  } },
    h("div", {}, h("label", { for: "period" }, "Period"),
      h("select", { id: "period", name: "period" },
        [["month", "This month"], ["7d", "Last 7 days"], ["30d", "Last 30 days"]].map(([v, t]) => h("option", { value: v, selected: v === period }, t)))),
    h("div", {}, h("label", { for: "split" }, "Lines for the top 5"),
      h("select", { id: "split", name: "split" },
        [["", "none"], ["team", "teams"], ["model", "models"], ["feature", "features"]].map(([v, t]) => h("option", { value: v, selected: v === split }, t)))),
    teams && (Array.isArray(teams) ? teams : teams.teams || []).length
      ? h("div", {}, h("label", { for: "team" }, "Team"),
        h("select", { id: "team", name: "team" }, h("option", { value: "" }, "All teams"),
          (Array.isArray(teams) ? teams : teams.teams || []).map((t) => h("option", { value: t.id, selected: t.id === team }, t.id))))
      : null);

  const tiles = h("div", { class: "tiles" },
    tile("Spent", usd(spent), "spent"),
    tile("Requests", requests.toLocaleString("en-US"), "requests"),
    bounds.forecastable ? tile("Month-end forecast", usd(forecast), "forecast", budget && forecast > budget) : null,
    budget ? tile("Monthly budget", usd(budget), "budget") : null,
    runsOut ? tile("Budget runs out", runsOut, "runs-out", true) : null);

  const chartTitle = `Spend ${period === "month" ? "this month" : period === "7d" ? "in the last 7 days" : "in the last 30 days"}${team ? ` for team ${team}` : ""}`;
  main.replaceChildren(
    h("h1", {}, "Spend"),
    controls,
    tiles,
    h("section", { class: "card", "aria-label": "spend over time" }, h("h2", {}, chartTitle),
      spendChart(days, { periodDays: bounds.days, budget, forecast, title: chartTitle, series }),
      series.length ? seriesLegend(series) : null),
    h("div", { class: "grid" },
      breakdown("By team", byTeam.rows, "team"),
      breakdown("By model", byModel.rows, "model"),
      breakdown("By feature", byFeature.rows, "feature"),
      breakdown("Top keys", byKey.rows.slice(0, 10), "key"),
      breakdown("Top users", byUser.rows.slice(0, 10), "user"),
      h("section", { class: "card", id: "anomalies" }, h("h2", {}, "Anomalies"),
        table([{ label: "what", value: (a) => a.what }, { label: "why", value: (a) => a.why }], anomalies, { empty: "None found." }))));
}

// The day-by-day spend of the top five groups of a breakdown (teams, models or features), for the chart.
async function splitSeries(by, rows, filter, days) {
  const top = rows.filter((r) => r.group !== null).slice(0, 5);
  const daily = await Promise.all(top.map((r) => api("GET", "/admin/spend", { query: { by: "day", ...filter, [by]: r.group } })));
  return top.map((r, i) => {
    const costs = new Map(daily[i].rows.map((d) => [d.group, Number(d.cost_usd)]));
    return { label: r.group, days: days.map((day) => ({ day, cost: costs.get(day) || 0 })) };
  });
}

function tile(label, value, id, warn = false) {
  return h("div", { class: `tile${warn ? " warn" : ""}`, id: `tile-${id}` }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

function breakdown(title, rows, name) {
  const max = Math.max(...rows.map((r) => Number(r.cost_usd)), 0);
  return h("section", { class: "card", id: `by-${name}` }, h("h2", {}, title),
    table([
      { label: name, value: (r) => r.group ?? "(none)" },
      { label: "requests", num: true, value: (r) => r.requests.toLocaleString("en-US") },
      { label: "tokens", num: true, value: (r) => (r.input_tokens + r.output_tokens).toLocaleString("en-US") },
      { label: "cost", num: true, value: (r) => usd(Number(r.cost_usd)) },
      { label: "share", value: (r) => proportion(Number(r.cost_usd), max) },
    ], rows));
}

// One key taking a large share of the bill, or a key spending far above its own recent daily average.
async function findAnomalies(keyRows, total, filter) {
  const found = [];
  for (const row of keyRows) {
    const cost = Number(row.cost_usd);
    if (total > 0 && cost / total >= 0.3 && keyRows.length > 1) {
      found.push({ what: `key ${row.group}`, why: `${Math.round((100 * cost) / total)}% of the period's spend (${usd(cost)})` });
    }
  }
  const since = new Date(Date.now() - 8 * 86400000).toISOString();
  const today = new Date().toISOString().slice(0, 10);
  const top = keyRows.slice(0, 5).filter((r) => r.group);
  const daily = await Promise.all(top.map((r) => api("GET", "/admin/spend", { query: { by: "day", key_id: r.group, since, team: filter.team } }).catch(() => null)));
  top.forEach((row, i) => {
    if (!daily[i]) return;
    const todayCost = Number(daily[i].rows.find((d) => d.group === today)?.cost_usd || 0);
    const before = daily[i].rows.filter((d) => d.group !== today).map((d) => Number(d.cost_usd));
    const baseline = before.reduce((a, b) => a + b, 0) / 7;
    if (todayCost > 0.01 && todayCost > 3 * baseline) {
      found.push({ what: `key ${row.group}`, why: `${usd(todayCost)} today against ${usd(baseline)} a day over the week before` });
    }
  });
  return found;
}

// -- decisions: the response cache, the firewall, the auto route ----------------------------------------

async function decisionsPage(params) {
  const period = params.get("period") || "month";
  const team = params.get("team") || "";
  const filter = { since: periodBounds(period).since, team };
  const [cache, tier, task, guardrail, categories] = await Promise.all(
    ["cache", "tier", "task", "guardrail", "guardrail_categories"].map((by) => api("GET", "/admin/spend", { query: { by, ...filter } })));
  const count = (rows, ...groups) => rows.filter((r) => groups.includes(r.group)).reduce((a, r) => a + r.requests, 0);
  const hits = count(cache.rows, "hit-exact", "hit-semantic");
  const lookups = hits + count(cache.rows, "miss");
  const saved = cache.rows.reduce((a, r) => a + Number(r.saved_usd || 0), 0);
  const decided = (rows) => rows.filter((r) => r.group !== null);
  const controls = h("form", { class: "controls", onchange: (e) => {
    const next = new URLSearchParams({ period: e.currentTarget.period.value });
    if (team) next.set("team", team);
    location.hash = `#/decisions?${next}`;
  } }, h("div", {}, h("label", { for: "period" }, "Period"),
    h("select", { id: "period", name: "period" },
      [["month", "This month"], ["7d", "Last 7 days"], ["30d", "Last 30 days"]].map(([v, t]) => h("option", { value: v, selected: v === period }, t)))));
  main.replaceChildren(
    h("h1", {}, `Decisions${team ? ` of team ${team}` : ""}`),
    controls,
    h("div", { class: "tiles" },
      tile("Cache hit rate", lookups ? `${Math.round((100 * hits) / lookups)}% (${hits} of ${lookups})` : "no lookups", "hit-rate"),
      tile("Saved by the cache", usd(saved), "saved"),
      tile("Blocked by the firewall", String(count(guardrail.rows, "block")), "blocked", count(guardrail.rows, "block") > 0),
      tile("Flagged or redacted", String(count(guardrail.rows, "flag", "redact")), "flagged")),
    h("div", { class: "grid" },
      decisionTable("Response cache", "cache", decided(cache.rows), [{ label: "saved", num: true, value: (r) => usd(Number(r.saved_usd || 0)) }]),
      decisionTable("Firewall actions", "guardrail", decided(guardrail.rows)),
      decisionTable("Firewall categories", "guardrail_categories", decided(categories.rows)),
      decisionTable("auto route: tier mix", "tier", decided(tier.rows)),
      decisionTable("auto route: tasks", "task", decided(task.rows))),
    h("p", { class: "note" }, "Requests the stage did not decide on (the stage off, or not applicable) are left out of each table."));
}

function decisionTable(title, name, rows, extra = []) {
  const total = rows.reduce((a, r) => a + r.requests, 0);
  return h("section", { class: "card", id: `decided-${name}` }, h("h2", {}, title),
    table([
      { label: name.replace("_", " "), value: (r) => r.group },
      { label: "requests", num: true, value: (r) => r.requests.toLocaleString("en-US") },
      { label: "share", num: true, value: (r) => `${Math.round((100 * r.requests) / (total || 1))}%` },
      { label: "cost", num: true, value: (r) => usd(Number(r.cost_usd)) },
      ...extra,
      { label: "", value: (r) => proportion(r.requests, total) },
    ], rows, { empty: "No decisions in this period." }));
}

// -- keys ------------------------------------------------------------------------------------------------

async function keysPage(params) {
  if (!canAdmin()) {
    main.replaceChildren(h("h1", {}, "Keys"), h("p", { class: "note" }, "Listing and managing keys needs a team admin, tenant admin or the master key."));
    return;
  }
  const team = params.get("team") || "";
  const keys = await api("GET", "/admin/keys", { query: { team } });
  const list = Array.isArray(keys) ? keys : keys.keys || [];
  const result = h("div", { id: "key-result", role: "status" });
  const create = h("form", { class: "card inline", id: "create-key", onsubmit: async (e) => {
    e.preventDefault();
    const f = e.currentTarget;
    const body = { role: f.role.value };
    for (const name of ["team", "user", "budget_usd"]) if (f[name].value.trim()) body[name] = f[name].value.trim();
    for (const name of ["rpm", "tpm"]) if (f[name].value.trim()) body[name] = Number(f[name].value);
    try {
      const made = await api("POST", "/admin/keys", { body });
      await keysPage(params);
      showSecret(`Key ${made.key_id} created. Copy the secret now: it is not shown again.`, made.key);
    } catch (error) { result.replaceChildren(h("p", { class: "error" }, error.message)); }
  } },
    h("h2", {}, "New key"),
    field("team", "Team", session.me.role === "team_admin" ? session.me.team : ""),
    field("user", "User"),
    h("div", {}, h("label", { for: "role" }, "Role"), h("select", { id: "role", name: "role" },
      ["inference", "viewer", "team_admin", "tenant_admin"].map((r) => h("option", { value: r }, r)))),
    field("budget_usd", "Budget (USD/month)"),
    field("rpm", "RPM"),
    field("tpm", "TPM"),
    h("button", { type: "submit" }, "Create key"));
  main.replaceChildren(
    h("h1", {}, "Keys"),
    result,
    create,
    h("section", { class: "card" }, h("h2", {}, `Keys${team ? ` of team ${team}` : ""}`),
      table([
        { label: "key", value: (k) => h("code", {}, k.key_id) },
        { label: "hint", value: (k) => k.hint },
        { label: "role", value: (k) => k.role },
        { label: "team", value: (k) => k.team },
        { label: "user", value: (k) => k.user },
        { label: "rpm", num: true, value: (k) => k.rpm },
        { label: "tpm", num: true, value: (k) => k.tpm },
        { label: "budget", num: true, value: (k) => (k.budget_usd ? `${usd(Number(k.budget_usd))} ${k.budget_period}` : null) },
        { label: "state", value: (k) => (k.revoked_at ? "revoked" : k.enabled ? "active" : "disabled") },
        { label: "actions", value: (k) => (k.revoked_at ? h("span", {}, "") : keyActions(k, params)) },
      ], list, { empty: "No keys." })));
}

function field(name, label, value = "") {
  return h("div", {}, h("label", { for: name }, label), h("input", { id: name, name, type: "text", value }));
}

function showSecret(message, secret) {
  document.getElementById("key-result").replaceChildren(h("p", {}, message), h("p", { class: "secret", id: "new-secret" }, secret));
}

function keyActions(k, params) {
  const row = h("div", { class: "actions" });
  const rotate = h("button", { type: "button", "data-action": "rotate", onclick: async () => {
    try {
      const rotated = await api("POST", `/admin/keys/${encodeURIComponent(k.key_id)}/rotate`, { body: {} });
      await keysPage(params);
      showSecret(`Key ${k.key_id} rotated; the old secret works until ${rotated.previous_valid_until || "its grace ends"}. Copy the new secret now.`, rotated.key);
    } catch (error) { document.getElementById("key-result").replaceChildren(h("p", { class: "error" }, error.message)); }
  } }, "Rotate");
  const revoke = h("button", { type: "button", class: "danger", "data-action": "revoke", onclick: async () => {
    if (!confirm(`Revoke ${k.key_id}? Every instance refuses it within seconds.`)) return;
    try {
      await api("DELETE", `/admin/keys/${encodeURIComponent(k.key_id)}`);
      await keysPage(params);
      document.getElementById("key-result").replaceChildren(h("p", {}, `Key ${k.key_id} revoked.`));
    } catch (error) { document.getElementById("key-result").replaceChildren(h("p", { class: "error" }, error.message)); }
  } }, "Revoke");
  const edit = h("button", { type: "button", "data-action": "limits", onclick: () => {
    const form = h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      const f = e.currentTarget;
      const body = {};
      for (const name of ["rpm", "tpm"]) body[name] = f[name].value.trim() ? Number(f[name].value) : null;
      body.budget_usd = f.budget_usd.value.trim() || null;
      try {
        await api("PATCH", `/admin/keys/${encodeURIComponent(k.key_id)}`, { body });
        await keysPage(params);
        document.getElementById("key-result").replaceChildren(h("p", {}, `Limits of ${k.key_id} saved.`));
      } catch (error) { document.getElementById("key-result").replaceChildren(h("p", { class: "error" }, error.message)); }
    } }, field("rpm", "RPM", k.rpm ?? ""), field("tpm", "TPM", k.tpm ?? ""), field("budget_usd", "Budget USD", k.budget_usd ?? ""), h("button", { type: "submit" }, "Save"));
    row.replaceChildren(form);
  } }, "Edit limits");
  row.append(rotate, " ", edit, " ", revoke);
  return row;
}

// -- deployments -----------------------------------------------------------------------------------------

async function deploymentsPage() {
  if (!isMaster()) {
    main.replaceChildren(h("h1", {}, "Deployments"), h("p", { class: "note" }, "Deployment health is shown to the master key only."));
    return;
  }
  const report = await api("GET", "/admin/routing/deployments");
  const ms = (v) => (v === null || v === undefined ? "–" : `${Math.round(v)} ms`);
  main.replaceChildren(h("h1", {}, "Deployments"), h("section", { class: "card" },
    table([
      { label: "deployment", value: (d) => d.deployment },
      { label: "groups", value: (d) => d.groups.join(", ") },
      { label: "breaker", value: (d) => h("span", { class: `state-${d.breaker.state}` }, d.breaker.state + (d.breaker.forced ? " (forced)" : "")) },
      { label: "why", value: (d) => d.breaker.reason || "" },
      { label: "errors (recent)", num: true, value: (d) => errorRate(d.breaker) },
      { label: "in flight", num: true, value: (d) => d.in_flight },
      { label: "req/min", num: true, value: (d) => d.requests_last_minute },
      { label: "TTFT p50 / p95", num: true, value: (d) => `${ms(d.latency.ttft_ms.p50)} / ${ms(d.latency.ttft_ms.p95)}` },
      { label: "total p50 / p95 / p99", num: true, value: (d) => `${ms(d.latency.total_ms.p50)} / ${ms(d.latency.total_ms.p95)} / ${ms(d.latency.total_ms.p99)}` },
    ], report.deployments, { empty: "No deployments." })));
}

function errorRate(breaker) {
  const calls = breaker.window_calls || 0;
  if (!calls) return "no calls";
  return `${breaker.window_failures} of ${calls} (${Math.round((100 * breaker.window_failures) / calls)}%)`;
}

// -- operator actions ------------------------------------------------------------------------------------

async function actionsPage() {
  if (!isMaster()) {
    main.replaceChildren(h("h1", {}, "Operator actions"), h("p", { class: "note" }, "Economy mode and emergency limits need the master key."));
    return;
  }
  const current = await api("GET", "/admin/limits/overrides");
  const list = Array.isArray(current) ? current : current.overrides || [];
  const status = h("div", { id: "action-result", role: "status" });
  const form = h("form", { class: "card inline", id: "put-action", onsubmit: async (e) => {
    e.preventDefault();
    const f = e.currentTarget;
    const body = { entity: f.entity.value.trim(), minutes: Number(f.minutes.value), economy: f.economy.checked };
    if (f.rpm.value.trim()) body.rpm = Number(f.rpm.value);
    if (f.reason.value.trim()) body.reason = f.reason.value.trim();
    try {
      await api("PUT", "/admin/limits/overrides", { body });
      await actionsPage();
      document.getElementById("action-result").replaceChildren(h("p", {}, `In force on ${body.entity}.`));
    } catch (error) { status.replaceChildren(h("p", { class: "error" }, error.message)); }
  } },
    h("h2", {}, "Economy mode or emergency limit"),
    field("entity", "Entity (key:ID, user:ID, team:ID, tenant:ID)"),
    field("minutes", "Minutes", "60"),
    field("rpm", "Emergency RPM"),
    h("div", {}, h("label", { for: "economy" }, "Economy mode"), h("input", { id: "economy", name: "economy", type: "checkbox" })),
    field("reason", "Reason"),
    h("button", { type: "submit" }, "Apply"));
  main.replaceChildren(h("h1", {}, "Operator actions"), status, form, h("section", { class: "card" }, h("h2", {}, "In force"),
    table([
      { label: "entity", value: (a) => a.entity },
      { label: "action", value: (a) => [a.economy ? "economy" : null, a.rpm ? `rpm ${a.rpm}` : null, a.tpm ? `tpm ${a.tpm}` : null].filter(Boolean).join(", ") },
      { label: "until", value: (a) => a.expires_at || a.until || "" },
      { label: "reason", value: (a) => a.reason || "" },
      { label: "", value: (a) => h("button", { type: "button", class: "danger", onclick: async () => {
        await api("DELETE", "/admin/limits/overrides", { body: { entity: a.entity } });
        await actionsPage();
      } }, "End now") },
    ], list, { empty: "None in force." })));
}

// -- routing ---------------------------------------------------------------------------------------------

const PAGES = { spend: spendPage, decisions: decisionsPage, keys: keysPage, deployments: deploymentsPage, actions: actionsPage };

async function route() {
  if (!session.key || !session.me) {
    showSignIn();
    return;
  }
  const [path, query] = (location.hash.slice(2) || "spend").split("?");
  const page = PAGES[path] ? path : "spend";
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  const me = session.me;
  document.getElementById("who").textContent = `${me.role}${me.team ? ` · team ${me.team}` : ""}${me.tenant ? ` · tenant ${me.tenant}` : ""}`;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("current", link.dataset.page === page);
  main.replaceChildren(h("p", { class: "note" }, "Loading…"));
  try {
    await PAGES[page](new URLSearchParams(query || ""));
  } catch (error) {
    if (error.status !== 401) main.replaceChildren(h("h1", {}, "Could not load this page"), h("p", { class: "error" }, error.message));
  }
}

document.getElementById("signout").addEventListener("click", () => signOut());
document.getElementById("signin").addEventListener("submit", signIn);
window.addEventListener("hashchange", route);
route();
