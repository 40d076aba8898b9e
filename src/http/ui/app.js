// Berth's web UI: plain JavaScript over the same JSON API the CLI uses
// (GET /api/openapi.json describes it). The session cookie set by login
// authenticates every call; no token is kept in the page.
"use strict";

const main = document.getElementById("main");
const flashBox = document.getElementById("flash");
let me = null;
let timers = [];
let streams = [];

// ---- helpers ----

function h(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

function badge(v) {
  return v ? `<span class="badge ${h(v)}">${h(v)}</span>` : `<span class="muted">–</span>`;
}

function bytes(n) {
  if (n == null) return "–";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

function when(t) {
  return t ? new Date(t).toLocaleString() : "–";
}

function flash(msg, error) {
  flashBox.innerHTML = `<div class="msg ${error ? "error" : ""}">${h(msg)}</div>`;
  clearTimeout(flash.t);
  flash.t = setTimeout(() => { flashBox.innerHTML = ""; }, error ? 8000 : 4000);
}

// ---- charts: hand-written SVG (no chart library, no build chain) ----

// Draws a line chart into `el`: `series` [{name, cls, points: [[t, v], …]}]
// over the last `windowMs`, dashed `lines` [{value, label, cls}] (a limit,
// a reservation), the y axis in `unit`. Each polyline carries its point
// count (data-points) so a test can see the data move.
function lineChart(el, { series, lines = [], unit = "", windowMs, min = 0 }) {
  const W = 600, H = 150, L = 46, R = 8, T = 10, B = 18;
  const now = Date.now();
  // The kept history, at least two minutes, at most fifteen.
  if (!windowMs) {
    const oldest = Math.min(now, ...series.flatMap((s) => s.points.map((p) => p[0])));
    windowMs = Math.min(15 * 60 * 1000, Math.max(2 * 60 * 1000, now - oldest));
  }
  const t0 = now - windowMs;
  const vals = series.flatMap((s) => s.points.map((p) => p[1])).concat(lines.map((l) => l.value));
  const top = Math.max(1e-9, ...vals) * 1.1;
  const x = (t) => L + ((t - t0) / windowMs) * (W - L - R);
  const y = (v) => T + (1 - (v - min) / (top - min)) * (H - T - B);
  const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const grid = [0, 0.5, 1].map((f) => {
    const v = min + f * (top - min);
    return `<line class="grid" x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}"/>` +
      `<text class="axis" x="${L - 4}" y="${y(v) + 4}" text-anchor="end">${h(fmt(v))}</text>`;
  }).join("");
  const limitLines = lines.map((l) =>
    `<line class="limit ${h(l.cls || "")}" x1="${L}" x2="${W - R}" y1="${y(l.value)}" y2="${y(l.value)}"/>` +
    `<text class="axis" x="${W - R}" y="${y(l.value) - 3}" text-anchor="end">${h(l.label)}</text>`).join("");
  const polys = series.map((s) => {
    const pts = s.points.filter((p) => p[0] >= t0);
    return `<polyline class="series ${h(s.cls || "")}" data-series="${h(s.name)}" data-points="${pts.length}" ` +
      `points="${pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ")}"/>`;
  }).join("");
  const legend = series.map((s) => `<span class="legend ${h(s.cls || "")}">${h(s.name)}</span>`).join(" ");
  el.innerHTML = `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img">` +
    `${grid}${limitLines}${polys}<text class="axis" x="${L}" y="${H - 4}">−${Math.round(windowMs / 60000)} min</text>` +
    `<text class="axis" x="${W - R}" y="${H - 4}" text-anchor="end">now ${h(unit)}</text></svg>` +
    `<div class="legends">${legend}</div>`;
}

// A small sparkline of one series (the workspace list).
function sparkline(points, cls) {
  const W = 80, H = 20;
  if (points.length < 2) return `<svg class="spark" viewBox="0 0 ${W} ${H}" data-points="${points.length}"></svg>`;
  const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
  const top = Math.max(1e-9, ...points.map((p) => p[1]));
  const pts = points.map((p) => `${(((p[0] - t0) / Math.max(1, t1 - t0)) * W).toFixed(1)},${(H - 1 - (p[1] / top) * (H - 2)).toFixed(1)}`);
  return `<svg class="spark" viewBox="0 0 ${W} ${H}" data-points="${points.length}"><polyline class="series ${h(cls)}" points="${pts.join(" ")}"/></svg>`;
}

// ANSI colour escapes (SGR) in a log line, as spans; everything else escaped.
const ANSI_COLOURS = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];
function ansiHtml(line) {
  let out = "", open = 0;
  const parts = line.split(/\x1b\[([0-9;]*)m/);
  for (let i = 0; i < parts.length; i++) {
    if (i % 2 === 0) { out += h(parts[i]); continue; }
    const codes = parts[i] === "" ? [0] : parts[i].split(";").map(Number);
    for (const c of codes) {
      if (c === 0) { out += "</span>".repeat(open); open = 0; }
      else if (c === 1) { out += `<span class="ansi-bold">`; open++; }
      else if ((c >= 30 && c <= 37) || (c >= 90 && c <= 97)) {
        out += `<span class="ansi-${ANSI_COLOURS[c % 10]}${c >= 90 ? " ansi-bright" : ""}">`; open++;
      }
    }
  }
  return out + "</span>".repeat(open);
}

// Whether this browser has logged in here (so a fresh visitor's page makes
// no API call that must fail); the session itself is the HttpOnly cookie.
const SESSION_HINT = "berth.loggedIn";
function hinted() { try { return localStorage.getItem(SESSION_HINT) === "1"; } catch (_) { return true; } }
function hint(on) { try { on ? localStorage.setItem(SESSION_HINT, "1") : localStorage.removeItem(SESSION_HINT); } catch (_) { /* private mode */ } }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    opts.headers["content-type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let v = null;
  try { v = JSON.parse(text); } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const msg = (v && v.error && v.error.message) || text || r.statusText;
    if (r.status === 401 && !path.endsWith("/auth/login")) {
      me = null;
      hint(false);
      if (!location.hash.startsWith("#/login")) location.hash = "#/login";
    }
    throw new ApiError(r.status, msg);
  }
  return v ? v.data : null;
}

// A whole list, page by page (the API's limit and nextCursor), so no one
// answer grows with the list.
async function apiAll(path) {
  const sep = path.includes("?") ? "&" : "?";
  let items = [];
  let cursor = null;
  for (;;) {
    const url = `${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const r = await fetch(url, { credentials: "same-origin" });
    const v = await r.json().catch(() => null);
    if (!r.ok) {
      if (r.status === 401) { me = null; hint(false); location.hash = "#/login"; }
      throw new ApiError(r.status, (v && v.error && v.error.message) || r.statusText);
    }
    items = items.concat(v.data);
    cursor = v.page && v.page.nextCursor;
    if (!cursor) return items;
  }
}

// Runs an action from a button, with its result or error in the flash.
async function act(button, work, done) {
  if (button) button.disabled = true;
  try {
    const msg = await work();
    // Redraw first, then say so: the message appears with the page that
    // shows the result, never over a table about to be replaced.
    if (done) await done();
    if (msg) flash(msg);
  } catch (e) {
    flash(e.message, true);
  } finally {
    if (button) button.disabled = false;
  }
}

function stopLive() {
  timers.forEach(clearInterval);
  streams.forEach((s) => s.close());
  timers = [];
  streams = [];
}

function every(ms, f) {
  timers.push(setInterval(f, ms));
}

// ---- routing ----

const routes = [
  [/^#\/login(?:\?.*)?$/, viewLogin],
  [/^#\/?$/, viewWorkspaces],
  [/^#\/ws\/([0-9a-f-]{36})$/, viewWorkspace],
  [/^#\/projects$/, viewProjects],
  [/^#\/project\/([0-9a-f-]{36})$/, viewProject],
  [/^#\/jobs$/, viewJobs],
  [/^#\/account$/, viewAccount],
  [/^#\/users$/, viewUsers],
  [/^#\/overview$/, viewOverview],
  [/^#\/audit$/, viewAudit],
];

// Where to go after login: only a workspace's app (the proxy, or the login
// handoff of an app's own origin, sends a browser without a session here
// with ?next=).
function nextTarget() {
  const q = new URLSearchParams((location.hash.split("?")[1]) || "");
  const next = q.get("next") || "";
  const ok = /^\/api\/workspaces\/[0-9a-f-]{36}\/(proxy|ports\/[0-9]+)\//.test(next)
    || /^\/api\/apps\/auth\?redirect=[^/\\]/.test(next);
  return ok ? next : null;
}

async function route() {
  stopLive();
  const hash = location.hash || "#/";
  if (hash.startsWith("#/login") && hinted()) {
    // Perhaps the session is fine (the cookie stays home on a link from
    // another site): then go on at once.
    try {
      me = await api("GET", "/api/auth/me");
      const next = nextTarget();
      if (next) location.replace(next); else location.hash = "#/";
      return;
    } catch (_) { /* not logged in: show the form */ }
  }
  if (!me && !hash.startsWith("#/login")) {
    if (!hinted()) {
      location.hash = "#/login";
      return;
    }
    try {
      me = await api("GET", "/api/auth/me");
    } catch (_) {
      location.hash = "#/login";
      return;
    }
  }
  document.getElementById("nav").hidden = !me;
  document.getElementById("who").textContent = me ? `${me.email} (${me.role})` : "";
  document.getElementById("nav-jobs").hidden = !(me && me.role === "admin");
  document.getElementById("nav-users").hidden = !(me && me.role === "admin");
  document.getElementById("nav-overview").hidden = !(me && me.role === "admin");
  document.getElementById("nav-audit").hidden = !(me && me.role === "admin");
  document.querySelectorAll("[data-nav]").forEach((a) => {
    const section = hash.startsWith("#/project") ? "projects"
      : ["jobs", "users", "account", "overview", "audit"].find((s) => hash.startsWith(`#/${s}`)) || "workspaces";
    a.classList.toggle("active", a.dataset.nav === section);
  });
  for (const [re, view] of routes) {
    const m = hash.match(re);
    if (m) {
      try {
        await view(...m.slice(1));
      } catch (e) {
        main.innerHTML = `<p class="muted">${h(e.message)}</p>`;
      }
      return;
    }
  }
  main.innerHTML = `<p class="muted">No such page. <a href="#/">Workspaces</a></p>`;
}

window.addEventListener("hashchange", route);
document.getElementById("logout").addEventListener("click", () =>
  act(null, async () => {
    await api("POST", "/api/auth/logout");
    me = null;
    hint(false);
    location.hash = "#/login";
    return "logged out";
  }));

// ---- login ----

async function viewLogin() {
  me = null;
  document.getElementById("nav").hidden = true;
  main.innerHTML = `
    <form class="card login" id="login-form">
      <h1>Log in to Berth</h1>
      <label>Email <input name="email" type="email" autocomplete="username" required autofocus></label>
      <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
      <button class="primary" type="submit">Log in</button>
    </form>`;
  document.getElementById("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    act(ev.submitter, async () => {
      const r = await api("POST", "/api/auth/login", { email: f.get("email"), password: f.get("password") });
      me = r.user;
      hint(true);
      const next = nextTarget();
      if (next) location.replace(next); else location.hash = "#/";
    });
  });
}

// ---- workspaces ----

// Recent CPU and memory per workspace for the list's sparklines, kept
// across refreshes of the page.
const sparks = new Map();
function sparkOf(id) {
  if (!sparks.has(id)) sparks.set(id, { cpu: [], mem: [] });
  return sparks.get(id);
}
function pushSpark(id, t, cpu, mem) {
  const s = sparkOf(id);
  if (cpu != null) s.cpu.push([t, cpu]);
  if (mem != null) s.mem.push([t, mem]);
  for (const k of ["cpu", "mem"]) if (s[k].length > 120) s[k].splice(0, s[k].length - 120);
}

// Follows the caller's workspaces' status and health (Server-Sent Events)
// and calls `onChange` with each change.
function followLive(onChange) {
  const es = new EventSource("/api/workspaces/live");
  es.onmessage = (e) => onChange(JSON.parse(e.data));
  streams.push(es);
  return es;
}

async function viewWorkspaces() {
  const [list, types, projects] = await Promise.all([
    apiAll("/api/workspaces"),
    api("GET", "/api/workspaces/types"),
    apiAll("/api/projects"),
  ]);
  const names = Object.fromEntries(projects.map((p) => [p.id, p.name]));
  const usable = types.filter((t) => t.available);
  main.innerHTML = `
    <h1>Workspaces</h1>
    <table id="ws-table">
      <thead><tr><th>Name</th><th>Type</th><th>Status</th><th>Health</th><th>Project</th><th>CPU</th><th>Memory</th><th>Last activity</th><th></th></tr></thead>
      <tbody>${list.map((w) => wsRow(w, names)).join("") ||
        `<tr><td colspan="9" class="muted">No workspaces yet: create one below.</td></tr>`}</tbody>
    </table>
    <h2>New workspace</h2>
    <form class="inline" id="ws-create">
      <label>Name <input name="name" required maxlength="100"></label>
      <label>Type <select name="type">${usable.map((t) =>
        `<option value="${h(t.type)}">${h(t.type)} — ${h(t.description)}</option>`).join("")}</select></label>
      <label>Project <select name="project">
        <option value="">a new project, named like the workspace</option>
        ${projects.map((p) => `<option value="${h(p.id)}">${h(p.name)}</option>`).join("")}
      </select></label>
      <button class="primary" type="submit">Create</button>
    </form>
    ${types.filter((t) => !t.available).map((t) =>
      `<p class="muted">${h(t.type)} is unavailable: ${h(t.unavailableReason)}</p>`).join("")}`;
  document.getElementById("ws-create").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    act(ev.submitter, async () => {
      let projectId = f.get("project");
      if (!projectId) {
        const p = await api("POST", "/api/projects", { name: f.get("name"), workspaceType: f.get("type") });
        projectId = p.id;
      }
      const w = await api("POST", "/api/workspaces", { name: f.get("name"), type: f.get("type"), projectId });
      return `created ${w.name}`;
    }, viewWorkspaces);
  });
  const drawSparks = () => {
    for (const w of list) {
      const row = document.querySelector(`#ws-table tr[data-id="${w.id}"]`);
      if (!row) continue;
      const s = sparkOf(w.id);
      row.querySelector("[data-cell=cpu]").innerHTML = sparkline(s.cpu, "cpu") +
        (s.cpu.length ? ` <span class="num">${s.cpu[s.cpu.length - 1][1].toFixed(1)} %</span>` : "");
      row.querySelector("[data-cell=mem]").innerHTML = sparkline(s.mem, "mem") +
        (s.mem.length ? ` <span class="num">${s.mem[s.mem.length - 1][1].toFixed(0)} MB</span>` : "");
    }
  };
  // The kept history of each running workspace first, then the live figures.
  const running = list.filter((w) => w.status === "running");
  await Promise.all(running.filter((w) => !sparks.has(w.id)).map(async (w) => {
    try {
      const st = await api("GET", `/api/workspaces/${w.id}/stats`);
      for (const p of st.history || []) pushSpark(w.id, Date.parse(p.at), p.cpuPercent, p.memoryUsage);
    } catch (_) { /* stopped meanwhile */ }
  }));
  drawSparks();
  const poll = async () => {
    try {
      const live = await api("GET", "/api/workspaces/stats/live");
      const t = Date.now();
      for (const v of live) pushSpark(v.workspaceId, t, v.cpu.percent, v.memory.usage);
      drawSparks();
    } catch (_) { /* the next tick retries */ }
  };
  poll();
  every(5000, poll);
  followLive((c) => {
    const row = document.querySelector(`#ws-table tr[data-id="${c.id}"]`);
    if (!row) return;
    row.querySelector("[data-cell=status]").innerHTML =
      badge(c.status) + (c.statusReason ? `<div class="muted">${h(c.statusReason)}</div>` : "");
    row.querySelector("[data-cell=health]").innerHTML = healthBadge(c.health);
    // The buttons only when what they can do changes (a redraw under the
    // pointer would swallow a click).
    const running = c.status === "running" || c.status === "starting";
    const cell = row.querySelector("[data-cell=buttons]");
    if (cell.dataset.running !== String(running)) {
      cell.dataset.running = String(running);
      cell.innerHTML = running
        ? `<button data-act="stop">Stop</button> <button data-act="restart">Restart</button>`
        : `<button data-act="start">Start</button>`;
    }
  });
}

function healthBadge(health) {
  return ["stopped", "no_container", "none", undefined, null].includes(health)
    ? `<span class="muted">${health === "none" ? "no check" : "–"}</span>` : badge(health);
}

/// " unreachable since …" for a workspace whose node does not answer.
function nodeTrouble(w) {
  return w.nodeUnreachableSince
    ? ` <span class="badge unreachable" title="since ${h(w.nodeUnreachableSince)}">unreachable</span> <span class="muted">since ${when(w.nodeUnreachableSince)}</span>`
    : "";
}

function wsRow(w, projectNames) {
  const running = w.status === "running" || w.status === "starting";
  return `<tr data-id="${h(w.id)}">
    <td><a href="#/ws/${h(w.id)}">${h(w.name)}</a> <span class="muted short" title="${h(w.id)}">#${h(w.id.slice(0, 8))}</span>${w.isDefault ? ` <span class="muted">(default)</span>` : ""}</td>
    <td>${h(w.type)}${w.node && w.node !== "local" ? ` <span class="muted">on ${h(w.node)}</span>` : ""}${nodeTrouble(w)}</td>
    <td data-cell="status">${badge(w.status)}${w.statusReason ? `<div class="muted">${h(w.statusReason)}</div>` : ""}</td>
    <td data-cell="health"><span class="muted">…</span></td>
    <td>${h(projectNames[w.currentProjectId] || "–")}</td>
    <td data-cell="cpu" class="nowrap"></td>
    <td data-cell="mem" class="nowrap"></td>
    <td>${when(w.lastActivityAt)}</td>
    <td class="actions">
      <a class="button primary" href="${h(openUrl(w.appUrl))}" target="_blank" rel="noopener">Open</a>
      <span data-cell="buttons" data-running="${running}">${running
        ? `<button data-act="stop">Stop</button> <button data-act="restart">Restart</button>`
        : `<button data-act="start">Start</button>`}</span>
    </td></tr>`;
}

// An app's URL as a link: its own origin (proxy.app_domain), or in path
// mode the path on whatever host this page was opened at.
function openUrl(u) {
  try {
    const url = new URL(u, location.href);
    return url.pathname.startsWith("/api/workspaces/") ? url.pathname + url.search : url.href;
  } catch (_) { return u; }
}

// Buttons in workspace rows and on the workspace page.
main.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-act]");
  if (!b) return;
  const id = b.closest("[data-id]")?.dataset.id;
  const a = b.dataset.act;
  if (["start", "stop", "restart"].includes(a)) {
    act(b, async () => {
      const w = await api("POST", `/api/workspaces/${id}/${a}`);
      return `${w.name}: ${w.status}`;
    }, route);
  } else if (a === "delete-ws") {
    if (!confirm("Delete this workspace? Its project's files stay.")) return;
    act(b, async () => {
      await api("DELETE", `/api/workspaces/${id}`);
      location.hash = "#/";
      return "workspace deleted";
    });
  } else if (handlers[a]) {
    handlers[a](b, id);
  }
});
const handlers = {};

async function viewWorkspace(id) {
  const [w, events] = await Promise.all([
    api("GET", `/api/workspaces/${id}`),
    api("GET", `/api/workspaces/${id}/events?limit=20`),
  ]);
  // Its node may not answer (503): the record is still shown, with why.
  const st = await api("GET", `/api/workspaces/${id}/status`).catch((e) => {
    if (!(e instanceof ApiError) || e.status !== 503) throw e;
    return { status: w.status, statusReason: e.message, containerRunning: false, health: null };
  });
  const l = (w.config && w.config.resourceLimits) || {};
  const running = st.containerRunning;
  main.innerHTML = `
    <div data-id="${h(w.id)}">
    <h1>${h(w.name)} <span class="muted">${h(w.type)} #${h(w.id.slice(0, 8))}</span></h1>
    <p>
      <a class="button primary" href="${h(openUrl(w.appUrl))}" target="_blank" rel="noopener">Open</a>
      ${running ? `<button data-act="stop">Stop</button> <button data-act="restart">Restart</button>`
                : `<button data-act="start">Start</button>`}
      <button class="danger" data-act="delete-ws">Delete</button>
    </p>
    <div class="card grid kv">
      <dl><dt>Status</dt><dd id="ws-status">${badge(st.status)} ${h(st.statusReason || "")}</dd>
          <dt>Health</dt><dd id="ws-health">${badge(st.health ? st.health.status : null)}${st.health && st.health.failingStreak
            ? ` <span class="muted">failing ${h(st.health.failingStreak)}×</span>` : ""}</dd></dl>
      <dl><dt>CPU</dt><dd id="cpu">–</dd><dt>Memory</dt><dd id="mem">–</dd></dl>
      <dl><dt>Network rx / tx</dt><dd id="net">–</dd><dt>Processes</dt><dd id="pids">–</dd></dl>
      <dl><dt>Container</dt><dd>${h(w.containerName)}</dd><dt>Image</dt><dd>${h(w.config ? w.config.image : "–")}</dd></dl>
      <dl><dt>Node</dt><dd id="ws-node">${h(w.node)}${nodeTrouble(w)}</dd></dl>
    </div>
    <div class="charts">
      <div class="card"><h3>CPU (% of one core)</h3><div id="chart-cpu" class="chart-box"></div></div>
      <div class="card"><h3>Memory (MB)</h3><div id="chart-mem" class="chart-box"></div></div>
      <div class="card"><h3>Network (KB/s)</h3><div id="chart-net" class="chart-box"></div></div>
    </div>
    <h2>Ports</h2>
    <div id="ports"><p class="muted">${running ? "Looking…" : "The workspace is not running: it listens on nothing."}</p></div>
    <h2>Logs</h2>
    <div class="logbar">
      <input id="log-filter" type="search" placeholder="Filter lines" aria-label="Filter log lines">
      <button id="log-follow" type="button" data-following="1">Pause</button>
      <a class="button" id="log-download" href="/api/workspaces/${h(w.id)}/logs?tail=all" download="${h(w.name)}.log">Download</a>
      <span class="muted" id="log-count"></span>
    </div>
    <pre class="logs" id="logs"></pre>
    <h2>Limits</h2>
    <form class="inline" id="limits">
      <label>CPUs <input name="cpus" type="number" step="0.1" min="0.1" value="${h(l.cpus)}"></label>
      <label>Memory (MB) <input name="memory" type="number" min="6" value="${h(l.memory)}"></label>
      <label>Memory + swap (MB) <input name="memorySwap" type="number" min="6" value="${h(l.memorySwap)}"></label>
      <label>Reservation (MB) <input name="memoryReservation" type="number" min="0" value="${h(l.memoryReservation)}"></label>
      <button type="submit">Apply${running ? " live" : ""}</button>
    </form>
    <h2>Events</h2>
    <table><thead><tr><th>When</th><th>Kind</th><th>Message</th></tr></thead><tbody>
      ${events.map((e) => `<tr><td>${when(e.at)}</td><td>${h(e.kind)}</td><td>${h(e.message)}</td></tr>`).join("")
        || `<tr><td colspan="3" class="muted">None yet.</td></tr>`}
    </tbody></table>
    </div>`;
  document.getElementById("limits").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const change = {};
    for (const k of ["cpus", "memory", "memorySwap", "memoryReservation"]) {
      const v = f.get(k);
      if (v !== "" && v !== null) change[k] = Number(v);
    }
    act(ev.submitter, async () => {
      await api("PATCH", `/api/workspaces/${id}/resources`, change);
      return "limits applied";
    });
  });
  // Status and health as they change.
  followLive((c) => {
    if (c.id !== id) return;
    const s = document.getElementById("ws-status");
    if (s) s.innerHTML = `${badge(c.status)} ${h(c.statusReason || "")}`;
    const hh = document.getElementById("ws-health");
    if (hh) hh.innerHTML = healthBadge(c.health);
  });
  // Logs: kept here, shown through the filter, followed unless paused.
  const logs = document.getElementById("logs");
  const lines = [];
  const filter = document.getElementById("log-filter");
  const follow = document.getElementById("log-follow");
  const count = document.getElementById("log-count");
  const showLogs = () => {
    const q = filter.value.toLowerCase();
    const shown = q ? lines.filter((x) => x.toLowerCase().includes(q)) : lines;
    logs.innerHTML = shown.length
      ? shown.map((x) => `<span class="line">${ansiHtml(x)}</span>`).join("\n")
      : `<span class="muted">${lines.length ? "No line matches the filter." : running ? "No output yet." : "The workspace is not running."}</span>`;
    count.textContent = q ? `${shown.length} of ${lines.length} lines` : `${lines.length} lines`;
    if (follow.dataset.following === "1") logs.scrollTop = logs.scrollHeight;
  };
  filter.addEventListener("input", showLogs);
  follow.addEventListener("click", () => {
    const on = follow.dataset.following !== "1";
    follow.dataset.following = on ? "1" : "0";
    follow.textContent = on ? "Pause" : "Follow";
    showLogs();
  });
  showLogs();
  // Charts: the kept history, then the live figures.
  const cpu = [], mem = [], rx = [], tx = [];
  let prevNet = null;
  const addNet = (t, r, x) => {
    if (prevNet && t > prevNet[0]) {
      const dt = (t - prevNet[0]) / 1000;
      rx.push([t, Math.max(0, (r - prevNet[1]) / 1024 / dt)]);
      tx.push([t, Math.max(0, (x - prevNet[2]) / 1024 / dt)]);
    }
    prevNet = [t, r, x];
  };
  let memLimit = null;
  const drawCharts = () => {
    const box = (i) => document.getElementById(i);
    if (!box("chart-cpu")) return;
    lineChart(box("chart-cpu"), { series: [{ name: "cpu", cls: "cpu", points: cpu }],
      lines: l.cpus ? [{ value: l.cpus * 100, label: `limit ${l.cpus * 100} %`, cls: "lim" }] : [] });
    const memLines = [];
    if (memLimit || l.memory) memLines.push({ value: memLimit || l.memory, label: `limit ${Math.round(memLimit || l.memory)} MB`, cls: "lim" });
    if (l.memoryReservation) memLines.push({ value: l.memoryReservation, label: `reservation ${l.memoryReservation} MB`, cls: "res" });
    lineChart(box("chart-mem"), { series: [{ name: "memory", cls: "mem", points: mem }], lines: memLines });
    lineChart(box("chart-net"), { series: [{ name: "received", cls: "rx", points: rx }, { name: "sent", cls: "tx", points: tx }] });
  };
  if (!running) { drawCharts(); return; }
  try {
    const s0 = await api("GET", `/api/workspaces/${id}/stats`);
    for (const p of s0.history || []) {
      const t = Date.parse(p.at);
      cpu.push([t, p.cpuPercent]);
      mem.push([t, p.memoryUsage]);
      addNet(t, p.rxBytes, p.txBytes);
    }
  } catch (_) { /* it stopped meanwhile */ }
  drawCharts();
  const mine = me && w.userId === me.id;
  const showPorts = async () => {
    const ports = await api("GET", `/api/workspaces/${id}/ports`);
    const el = document.getElementById("ports");
    if (!el) return;
    el.innerHTML = ports.length ? `<table id="ports-table"><thead><tr><th>Port</th><th>Listens on</th><th>Shared with</th><th></th></tr></thead><tbody>
      ${ports.map((p) => `<tr data-port="${h(p.port)}">
        <td><a href="${h(openUrl(p.url))}" target="_blank" rel="noopener">${h(p.port)}</a>${p.main ? ` <span class="muted">(the app)</span>` : ""}</td>
        <td class="muted">${h(p.address)}</td>
        <td>${mine ? `<select data-share>${["owner", "authenticated", "public"].map((l) =>
            `<option value="${l}" ${l === p.share ? "selected" : ""}>${l === "owner" ? "only me" : l === "authenticated" ? "anyone logged in" : "anyone"}</option>`).join("")}</select>`
          : h(p.share)}${!mine && p.share !== "owner" ? ` <button data-act="unshare">Revoke</button>` : ""}</td>
        <td><a class="button" href="${h(openUrl(p.url))}" target="_blank" rel="noopener">Open</a></td></tr>`).join("")}
      </tbody></table><p class="muted">Shares apply on apps' own origins only.</p>`
      : `<p class="muted">Nothing listens yet.</p>`;
    el.querySelectorAll("select[data-share]").forEach((sel) => sel.addEventListener("change", () => {
      const port = sel.closest("[data-port]").dataset.port;
      act(sel, async () => {
        await api("PUT", `/api/workspaces/${id}/shares/${port}`, { level: sel.value });
        return `port ${port}: ${sel.value}`;
      }, showPorts);
    }));
    el.querySelectorAll("button[data-act=unshare]").forEach((b) => b.addEventListener("click", (ev) => {
      ev.stopPropagation();
      const port = b.closest("[data-port]").dataset.port;
      act(b, async () => {
        await api("DELETE", `/api/workspaces/${id}/shares/${port}`);
        return `port ${port} no longer shared`;
      }, showPorts);
    }));
  };
  showPorts().catch((e) => { const el = document.getElementById("ports"); if (el) el.textContent = e.message; });
  every(10000, () => showPorts().catch(() => {}));
  const logStream = new EventSource(`/api/workspaces/${id}/logs/stream?tail=200`);
  logStream.onmessage = (e) => {
    lines.push(e.data);
    if (lines.length > 5000) lines.splice(0, lines.length - 5000);
    if (follow.dataset.following === "1") showLogs();
  };
  logStream.addEventListener("end", () => { lines.push("— the container stopped —"); showLogs(); logStream.close(); });
  const stats = new EventSource(`/api/workspaces/${id}/stats/stream?interval=2`);
  stats.onmessage = (e) => {
    const s = JSON.parse(e.data);
    const t = Date.parse(s.timestamp) || Date.now();
    document.getElementById("cpu").textContent = s.cpu.percent == null ? "–" : `${s.cpu.percent.toFixed(1)} %`;
    document.getElementById("mem").textContent =
      `${s.memory.usage.toFixed(1)} MB${s.memory.limit ? ` of ${s.memory.limit.toFixed(0)} MB` : ""}`;
    document.getElementById("net").textContent = `${bytes(s.network.rxBytes)} / ${bytes(s.network.txBytes)}`;
    document.getElementById("pids").textContent = s.pids ?? "–";
    if (s.cpu.percent != null) cpu.push([t, s.cpu.percent]);
    mem.push([t, s.memory.usage]);
    if (s.memory.limit) memLimit = s.memory.limit;
    addNet(t, s.network.rxBytes, s.network.txBytes);
    drawCharts();
  };
  stats.addEventListener("end", () => stats.close());
  streams.push(logStream, stats);
}

// ---- projects and backups ----

async function viewProjects() {
  const projects = await apiAll("/api/projects");
  main.innerHTML = `
    <h1>Projects</h1>
    <table><thead><tr><th>Name</th><th>Type</th><th>Volume</th><th>Created</th></tr></thead><tbody>
      ${projects.map((p) => `<tr><td><a href="#/project/${h(p.id)}">${h(p.name)}</a></td>
        <td>${h(p.workspaceType || "–")}</td><td class="muted">${h(p.volumeName)}</td><td>${when(p.createdAt)}</td></tr>`).join("")
        || `<tr><td colspan="4" class="muted">No projects yet.</td></tr>`}
    </tbody></table>
    <h2>New project</h2>
    <form class="inline" id="project-create">
      <label>Name <input name="name" required maxlength="100"></label>
      <label>Description <input name="description" maxlength="2000"></label>
      <button class="primary" type="submit">Create</button>
    </form>`;
  document.getElementById("project-create").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    act(ev.submitter, async () => {
      const p = await api("POST", "/api/projects", { name: f.get("name"), description: f.get("description") });
      return `created ${p.name}`;
    }, viewProjects);
  });
}

async function viewProject(id) {
  const [p, backups, policy] = await Promise.all([
    api("GET", `/api/projects/${id}`),
    apiAll(`/api/projects/${id}/backups`),
    api("GET", `/api/projects/${id}/backup-policy`),
  ]);
  main.innerHTML = `
    <div data-id="${h(p.id)}">
    <h1>${h(p.name)} <span class="muted">${h(p.description)}</span></h1>
    <p><span class="muted">Volume</span> <span class="mono">${h(p.volumeName)}</span>${p.volumeName !== `berth-project-${p.id}`
      ? ` <span class="muted" title="restores and clones fill a new volume and switch the project to it">(the volume of its last restore or clone)</span>` : ""}
      · <span id="size"><button class="link" data-act="size">size</button></span></p>
    <h2>Backups</h2>
    <form class="inline" id="backup-create">
      <label>Compression <select name="compression"><option>zstd</option><option>gzip</option></select></label>
      <label><span><input type="checkbox" name="pause"> pause running workspaces</span></label>
      <button class="primary" type="submit">Back up now</button>
    </form>
    <div id="progress" class="progress" hidden></div>
    <table id="backups"><thead><tr><th>Taken</th><th>State</th><th>Size</th><th>Compression</th><th>Remote copy</th><th></th></tr></thead><tbody>
      ${backups.map((b) => `<tr data-backup="${h(b.id)}">
        <td>${when(b.createdAt)}${b.uploaded ? ` ${badge("uploaded")}` : ""}${b.crashConsistent ? ` <span class="muted" title="taken while the volume was in use${b.skipped && b.skipped.count ? `; ${b.skipped.count} path(s) vanished while it was read` : ""}">(crash-consistent)</span>` : ""}</td>
        <td>${badge(b.state)}${b.error ? `<div class="muted">${h(b.error)}</div>` : ""}</td>
        <td class="nowrap" title="${b.unpackedBytes != null ? `unpacks to ${bytes(b.unpackedBytes)}` : ""}">${bytes(b.sizeBytes)}</td><td>${h(b.compression)}</td>
        <td>${b.remote ? `${badge(b.remote.state)}${b.storedLocally ? "" : ` <span class="muted" title="fetched back when needed">remote only</span>`}${b.remote.error ? `<div class="muted">${h(b.remote.error)}</div>` : ""}` : `<span class="muted">–</span>`}</td>
        <td class="actions">${b.state === "complete" ? `
          <a class="button" href="/api/backups/${h(b.id)}/download">Download</a>
          <button data-act="verify">Verify</button>
          <button data-act="restore">Restore</button>` : ""}
          <button class="danger" data-act="delete-backup">Delete</button></td></tr>`).join("")
        || `<tr><td colspan="6" class="muted">No backups yet.</td></tr>`}
    </tbody></table>
    <h2>Schedule and retention</h2>
    <form class="inline" id="policy">
      <label>Schedule (cron) <input name="schedule" value="${h(policy.own.schedule || "")}" placeholder="${h(policy.schedule)}"></label>
      <label>Keep last <input name="keepLast" type="number" min="0" value="${h(policy.own.keepLast ?? "")}" placeholder="${h(policy.keepLast)}"></label>
      <label>Keep daily <input name="keepDaily" type="number" min="0" value="${h(policy.own.keepDaily ?? "")}" placeholder="${h(policy.keepDaily)}"></label>
      <label>Keep weekly <input name="keepWeekly" type="number" min="0" value="${h(policy.own.keepWeekly ?? "")}" placeholder="${h(policy.keepWeekly)}"></label>
      <button type="submit">Save</button>
    </form>
    <p class="muted">Empty fields follow the server's defaults (shown greyed).</p>
    <h2>Clone</h2>
    <form class="inline" id="clone">
      <label>New project name <input name="name" required maxlength="100" value="${h(p.name)}-copy"></label>
      <button type="submit">Clone the volume</button>
    </form>
    </div>`;
  document.getElementById("backup-create").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    act(ev.submitter, () => withProgress("Backing up", async () => {
      await api("POST", `/api/workspaces/projects/${id}/backup`,
        { compression: f.get("compression"), pauseWorkspace: f.get("pause") === "on" });
      return "backup complete";
    }), () => viewProject(id));
  });
  document.getElementById("policy").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const body = {};
    if (f.get("schedule")) body.schedule = f.get("schedule");
    for (const k of ["keepLast", "keepDaily", "keepWeekly"]) if (f.get(k) !== "") body[k] = Number(f.get(k));
    act(ev.submitter, async () => {
      await api("PUT", `/api/projects/${id}/backup-policy`, body);
      return "policy saved";
    }, () => viewProject(id));
  });
  document.getElementById("clone").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    act(ev.submitter, () => withProgress("Cloning the volume", async () => {
      const r = await api("POST", `/api/workspaces/projects/${id}/clone`, { name: f.get("name") });
      location.hash = `#/project/${r.targetProject.id}`;
      return `cloned into ${r.targetProject.name}`;
    }));
  });
}

// A long request (backup, restore, clone) shows that it runs, and for how
// long, in the page's #progress box.
async function withProgress(label, work) {
  const box = document.getElementById("progress");
  const started = Date.now();
  const tick = () => {
    if (box) box.innerHTML = `<span class="spinner"></span> ${h(label)}… ${Math.round((Date.now() - started) / 1000)} s`;
  };
  if (box) { box.hidden = false; tick(); }
  const t = setInterval(tick, 500);
  try {
    return await work();
  } finally {
    clearInterval(t);
    if (box) box.hidden = true;
  }
}

// ---- overview (admins): every running workspace at a glance ----

async function viewOverview() {
  const [list, users] = await Promise.all([apiAll("/api/workspaces"), apiAll("/api/users")]);
  const emails = Object.fromEntries(users.map((u) => [u.id, u.email]));
  const rows = new Map(list.map((w) => [w.id, { w, owner: emails[w.userId] || w.userId, cpu: null, mem: null, limit: null, health: null, status: w.status }]));
  let sortKey = "cpu", desc = true;
  main.innerHTML = `
    <h1>Overview</h1>
    <p class="muted">Every running workspace: who uses what. Click a heading to sort.</p>
    <h2>Running workspaces</h2>
    <table id="overview"><thead><tr>
      <th data-sort="name">Workspace</th><th data-sort="owner">Owner</th><th data-sort="type">Type</th>
      <th data-sort="cpu">CPU</th><th data-sort="mem">Memory (of limit)</th><th data-sort="health">Health</th></tr></thead>
      <tbody></tbody></table>
    <h2>Nodes</h2>
    <p class="muted">The Docker engines workspaces run on, as the last heartbeat saw them. A cordoned node keeps what runs there and takes nothing new.</p>
    <table id="nodes"><thead><tr><th>Node</th><th>State</th><th>Endpoint</th><th>CPUs (allocated of)</th><th>Memory (allocated of)</th>
      <th>Running</th><th>Projects</th><th>Labels</th><th></th></tr></thead><tbody></tbody></table>
    <h2>Workspace types</h2>
    <table id="types"><thead><tr><th>Type</th><th>Image</th><th>Available</th><th></th></tr></thead><tbody></tbody></table>`;
  const share = (used, of) => {
    const pct = of ? Math.min(100, (used / of) * 100) : 0;
    return `<svg class="bar" viewBox="0 0 100 6" preserveAspectRatio="none"><rect class="track" width="100" height="6"/><rect class="fill" width="${pct.toFixed(0)}" height="6"/></svg>`;
  };
  const drawNodes = async () => {
    const nodes = await api("GET", "/api/nodes");
    const body = document.querySelector("#nodes tbody");
    if (!body) return;
    body.innerHTML = nodes.map((n) => {
      const c = n.capacity;
      const state = n.state === "unreachable"
        ? `${badge("unreachable")} <span class="muted" title="${h(n.error || "")}">since ${when(n.unreachableSince)}</span>`
        : badge(n.state);
      return `<tr data-node="${h(n.name)}"><td>${h(n.name)}</td><td data-cell="state">${state}</td>
        <td class="mono">${h(n.endpoint)}${n.tls ? ` ${badge("tls")}` : ""}</td>
        <td class="nowrap">${c ? `${share(n.allocated.cpus, c.cpus)} ${h(n.allocated.cpus)} <span class="muted">of ${h(c.cpus)}</span>` : "–"}</td>
        <td class="nowrap">${c ? `${share(n.allocated.memoryMb, c.memoryMb)} ${h(n.allocated.memoryMb)} MB <span class="muted">of ${h(c.memoryMb)}</span>` : "–"}</td>
        <td>${h(n.runningWorkspaces)}</td><td>${h(n.projects)}</td>
        <td class="mono">${Object.entries(n.labels).map(([k, v]) => h(`${k}=${v}`)).join(" ") || "–"}</td>
        <td class="actions"><button data-act="node-cordon" data-cordon="${n.cordoned ? "false" : "true"}">${n.cordoned ? "Uncordon" : "Cordon"}</button></td></tr>`;
    }).join("");
    body.querySelectorAll("button[data-act=node-cordon]").forEach((b) => b.addEventListener("click", (ev) => {
      ev.stopPropagation();
      const name = b.closest("tr").dataset.node;
      const cordoned = b.dataset.cordon === "true";
      act(b, async () => {
        await api("PATCH", `/api/nodes/${encodeURIComponent(name)}`, { cordoned });
        return cordoned ? `${name} cordoned: nothing new is placed there` : `${name} takes work again`;
      }, drawNodes);
    }));
  };
  drawNodes().catch((e) => flash(e.message, true));
  every(10000, () => drawNodes().catch(() => {}));
  const drawTypes = async () => {
    const types = await api("GET", "/api/workspaces/types");
    const body = document.querySelector("#types tbody");
    if (!body) return;
    body.innerHTML = types.map((t) => `<tr data-type="${h(t.type)}"><td>${h(t.type)}</td><td class="mono">${h(t.image || "–")}</td>
      <td>${t.available ? badge("yes") : `${badge("no")} <span class="muted">${h(t.unavailableReason)}</span>`}</td>
      <td class="actions">${t.image ? `<button data-act="pull-type">Pull</button>` : ""}<div class="progress" data-pull hidden></div></td></tr>`).join("");
    body.querySelectorAll("button[data-act=pull-type]").forEach((b) => b.addEventListener("click", (ev) => {
      ev.stopPropagation();
      const row = b.closest("tr");
      const name = row.dataset.type;
      const box = row.querySelector("[data-pull]");
      act(b, async () => {
        let p = await api("POST", `/api/workspaces/types/${name}/pull`);
        box.hidden = false;
        while (p.state === "pulling") {
          const pct = p.bytesTotal ? Math.round((p.bytesDone / p.bytesTotal) * 100) : 0;
          box.innerHTML = `<span class="spinner"></span> ${h(p.layers.length)} layer(s), ${bytes(p.bytesDone)} of ${bytes(p.bytesTotal)} (${pct} %)`;
          await new Promise((r) => setTimeout(r, 500));
          p = await api("GET", `/api/workspaces/types/${name}/pull`);
        }
        box.hidden = true;
        if (p.state === "failed") throw new Error(p.error);
        return `pulled ${p.image}`;
      }, drawTypes);
    }));
  };
  drawTypes().catch((e) => flash(e.message, true));
  const val = (r, k) => ({ name: r.w.name, owner: r.owner, type: r.w.type, cpu: r.cpu ?? -1,
    mem: r.mem ?? -1, health: r.health || "" })[k];
  const draw = () => {
    const body = document.querySelector("#overview tbody");
    if (!body) return;
    const shown = [...rows.values()].filter((r) => r.status === "running" || r.status === "starting");
    shown.sort((a, b) => {
      const x = val(a, sortKey), y = val(b, sortKey);
      return (x < y ? -1 : x > y ? 1 : 0) * (desc ? -1 : 1);
    });
    body.innerHTML = shown.map((r) => {
      const pct = r.mem != null && r.limit ? Math.min(100, (r.mem / r.limit) * 100) : 0;
      return `<tr data-id="${h(r.w.id)}"><td><a href="#/ws/${h(r.w.id)}">${h(r.w.name)}</a> <span class="muted short">#${h(r.w.id.slice(0, 8))}</span></td>
        <td>${h(r.owner)}</td><td>${h(r.w.type)}</td>
        <td class="nowrap" data-cell="cpu">${r.cpu == null ? "–" : `${r.cpu.toFixed(1)} %`}</td>
        <td class="nowrap" data-cell="mem"><svg class="bar" viewBox="0 0 100 6" preserveAspectRatio="none"><rect class="track" width="100" height="6"/><rect class="fill" width="${pct.toFixed(0)}" height="6"/></svg>
          ${r.mem == null ? "–" : `${r.mem.toFixed(0)} MB`}${r.limit ? ` <span class="muted">of ${r.limit.toFixed(0)}</span>` : ""}</td>
        <td data-cell="health">${healthBadge(r.health)}</td></tr>`;
    }).join("") || `<tr><td colspan="6" class="muted">No workspace is running.</td></tr>`;
  };
  document.querySelectorAll("#overview th[data-sort]").forEach((th) => th.addEventListener("click", () => {
    desc = sortKey === th.dataset.sort ? !desc : true;
    sortKey = th.dataset.sort;
    draw();
  }));
  const poll = async () => {
    try {
      for (const v of await api("GET", "/api/workspaces/stats/live")) {
        const r = rows.get(v.workspaceId);
        if (r) { r.cpu = v.cpu.percent; r.mem = v.memory.usage; r.limit = v.memory.limit; }
      }
      draw();
    } catch (_) { /* the next tick retries */ }
  };
  draw();
  await poll();
  every(5000, poll);
  followLive((c) => {
    const r = rows.get(c.id);
    if (r) { r.health = c.health; r.status = c.status; draw(); }
  });
}

// ---- jobs and cleanup (admins) ----

async function viewJobs() {
  const jobs = await api("GET", "/api/jobs");
  main.innerHTML = `
    <h1>Jobs</h1>
    <table id="jobs"><thead><tr><th>Job</th><th>Schedule</th><th>Next run</th><th>Last run</th><th></th></tr></thead><tbody>
      ${jobs.map((j) => {
        const last = j.recentRuns[0];
        return `<tr data-job="${h(j.name)}"><td>${h(j.name)}${j.running ? ` ${badge("running")}` : ""}</td>
          <td>${j.enabled ? h(j.schedule) : `<span class="muted">off</span>`}</td>
          <td>${when(j.nextRun)}</td>
          <td>${last ? `${badge(last.outcome)} ${when(last.finishedAt)}${last.dryRun ? " (dry run)" : ""}` : `<span class="muted">never</span>`}</td>
          <td class="actions"><button data-act="job-dry">Dry run</button> <button data-act="job-run">Run now</button></td></tr>`;
      }).join("")}
    </tbody></table>
    <h2>Cleanup</h2>
    <p>All cleanup jobs at once: stop inactive workspaces, remove orphaned containers and volumes, recover workspaces in error.</p>
    <p><button data-act="cleanup-dry">What would it do?</button> <button class="danger" data-act="cleanup-run">Clean up now</button></p>
    <div id="report"></div>`;
}

function showReport(r) {
  const counts = r.counts
    ? Object.entries(r.counts).map(([k, v]) => `${h(k)} ${h(v)}`).join(", ")
    : `inactive containers ${h(r.inactiveContainers)}, orphaned containers ${h(r.orphanedContainers)}, ` +
      `orphaned volumes ${h(r.orphanedVolumes)}, workspaces in error ${h(r.errorWorkspaces)}`;
  const errors = r.errors ? r.errors.map((e) => `${e.job}: ${e.error}`) : (r.error ? [r.error] : []);
  document.getElementById("report").innerHTML = `
    <div class="card"><strong>${r.dryRun ? "Dry run — nothing was changed." : "Done."}</strong>
      <p>${counts || "nothing to do"}</p>
      ${errors.map((e) => `<p class="muted">${h(e)}</p>`).join("")}
      <table><thead><tr><th>Job</th><th>Action</th><th>Resource</th><th>Why</th><th>Outcome</th></tr></thead><tbody>
        ${r.details.map((d) => `<tr><td>${h(d.job)}</td><td>${h(d.action)}</td><td>${h(d.resource)}</td>
          <td>${h(d.reason)}</td><td>${h(d.outcome)}</td></tr>`).join("")
          || `<tr><td colspan="5" class="muted">No actions.</td></tr>`}
      </tbody></table></div>`;
}

handlers["cleanup-dry"] = (b) => act(b, async () => showReport(await api("POST", "/api/workspaces/cleanup?dryRun=true")));
handlers["cleanup-run"] = (b) => {
  if (!confirm("Run every cleanup job now?")) return;
  act(b, async () => showReport(await api("POST", "/api/workspaces/cleanup")));
};
handlers["job-dry"] = (b) => act(b, async () =>
  showReport(await api("POST", `/api/jobs/${b.closest("[data-job]").dataset.job}/run?dryRun=true`)));
handlers["job-run"] = (b) => {
  const job = b.closest("[data-job]").dataset.job;
  if (!confirm(`Run ${job} now?`)) return;
  act(b, async () => showReport(await api("POST", `/api/jobs/${job}/run`)), viewJobs);
};

handlers.size = (b, id) => act(b, async () => {
  const s = await api("GET", `/api/workspaces/projects/${id}/volume-size`);
  document.getElementById("size").textContent = bytes(s.sizeBytes);
});
handlers.verify = (b) => act(b, () => withProgress("Verifying", async () => {
  const r = await api("POST", `/api/backups/${b.closest("[data-backup]").dataset.backup}/verify`);
  return `backup verified: ${r.entries} entries, checksum matches`;
}));
handlers.restore = (b, id) => {
  if (!confirm("Replace the project's files with this backup? The current volume is kept for the retention period.")) return;
  act(b, () => withProgress("Restoring", async () => {
    await api("POST", `/api/workspaces/projects/${id}/restore`,
      { backupId: b.closest("[data-backup]").dataset.backup, stopWorkspace: true });
    return "restored";
  }), () => viewProject(id));
};
handlers["delete-backup"] = (b, id) => {
  if (!confirm("Delete this backup and its archive?")) return;
  act(b, async () => {
    await api("DELETE", `/api/backups/${b.closest("[data-backup]").dataset.backup}`);
    return "backup deleted";
  }, () => viewProject(id));
};

// ---- your account: password and tokens ----

// ---- quotas ----

// One limit as a bar: what is used of it (an empty track when there is
// no limit), amber from 80 %, red at the limit.
function quotaBar(used, limit) {
  const ratio = limit ? Math.min(1, used / limit) : 0;
  const cls = !limit ? "" : used >= limit ? "bad" : ratio >= 0.8 ? "warn" : "";
  return `<svg class="bar quota ${cls}" viewBox="0 0 100 6" data-ratio="${ratio.toFixed(3)}">` +
    `<rect class="track" width="100" height="6" rx="3"/><rect class="fill" width="${(ratio * 100).toFixed(1)}" height="6" rx="3"/></svg>`;
}

// The rows of a quota: [name, used text, limit text, bar, source].
function quotaRows(q) {
  const n = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(2));
  const row = (key, label, item, unit = "") => ({
    key, label, bar: quotaBar(item.used, item.limit), source: item.source,
    text: `${n(item.used)}${unit} of ${item.limit == null ? "unlimited" : `${n(item.limit)}${unit}`}`,
    short: `${n(item.used)}/${item.limit == null ? "∞" : n(item.limit)}${unit}`,
  });
  const rows = [
    row("workspaces", "Workspaces", q.workspaces),
    row("running", "Running", q.running),
    row("cpus", "CPUs (running)", q.cpus),
    row("memory", "Memory (running)", q.memoryMb, " MB"),
    {
      key: "storage", label: "Storage", bar: quotaBar(q.storage.used, q.storage.limit), source: q.storage.source,
      text: `${bytes(q.storage.used)} of ${q.storage.limit == null ? "unlimited" : bytes(q.storage.limit)}`,
      short: `${bytes(q.storage.used)}/${q.storage.limit == null ? "∞" : bytes(q.storage.limit)}`,
    },
  ];
  if (q.site) {
    rows.push(row("site-cpus", "Everyone's CPUs", q.site.cpus));
    rows.push(row("site-memory", "Everyone's memory", q.site.memoryMb, " MB"));
  }
  return rows;
}

function quotaTable(q) {
  return `<table id="quota"><thead><tr><th>Limit</th><th>Used</th><th></th><th>From</th></tr></thead><tbody>
    ${quotaRows(q).map((r) => `<tr data-quota="${h(r.key)}"><td>${h(r.label)}</td><td class="nowrap">${h(r.text)}</td>
      <td>${r.bar}</td><td class="muted">${r.source === "user" ? "set for you" : "your role"}</td></tr>`).join("")}
  </tbody></table>
  <p class="muted">Running workspaces count with their CPU limit and memory reservation; stopping one frees them at once.
    Storage is your project volumes (measured ${q.storage.measuredAt ? when(q.storage.measuredAt) : "not yet"}, approximate between measurements) and your backups.</p>`;
}

async function viewAccount() {
  const [tokens, quota] = await Promise.all([api("GET", "/api/auth/tokens"), api("GET", "/api/auth/me/quota")]);
  main.innerHTML = `
    <h1>Your account</h1>
    <p>${h(me.email)} · ${badge(me.role)}</p>
    <h2>Password</h2>
    <form class="inline" id="password-form">
      <label>Current password <input name="current" type="password" autocomplete="current-password" required></label>
      <label>New password <input name="new" type="password" autocomplete="new-password" minlength="8" required></label>
      <label>Repeat it <input name="again" type="password" autocomplete="new-password" minlength="8" required></label>
      <button type="submit">Change password</button>
    </form>
    <p class="muted">Changing it logs out your other sessions. API tokens keep working; revoke them below.</p>
    <h2>Your quota</h2>
    ${quotaTable(quota)}
    <h2>Tokens and sessions</h2>
    <table id="tokens"><thead><tr><th>Name</th><th>Kind</th><th>Created</th><th>Last used</th><th>Expires</th><th></th></tr></thead><tbody>
      ${tokens.map((t) => `<tr data-token="${h(t.id)}"><td>${h(t.name)}${t.current ? ` ${badge("this session")}` : ""}</td>
        <td>${h(t.kind)}</td><td>${when(t.createdAt)}</td><td>${when(t.lastUsedAt)}</td>
        <td>${t.expiresAt ? when(t.expiresAt) : `<span class="muted">never</span>`}</td>
        <td class="actions">${t.current ? "" : `<button class="danger" data-act="revoke-token">Revoke</button>`}</td></tr>`).join("")}
    </tbody></table>
    <form class="inline" id="token-form">
      <label>New API token, named <input name="name" required maxlength="100" placeholder="e.g. ci, laptop"></label>
      <button type="submit">Make token</button>
    </form>
    <div id="new-token"></div>`;
  document.getElementById("password-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    if (f.get("new") !== f.get("again")) { flash("the two new passwords differ", true); return; }
    act(ev.submitter, async () => {
      const r = await api("POST", "/api/auth/password", { currentPassword: f.get("current"), newPassword: f.get("new") });
      ev.target.reset();
      return `password changed; ${r.endedSessions} other session(s) logged out`;
    }, viewAccount);
  });
  document.getElementById("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    act(ev.submitter, async () => {
      const t = await api("POST", "/api/auth/tokens", { name: f.get("name") });
      await viewAccount();
      document.getElementById("new-token").innerHTML = `
        <div class="card"><strong>Token "${h(t.name)}" — copy it now, it is not shown again:</strong>
          <pre class="token" id="token-value">${h(t.token)}</pre>
          <p class="muted">Use it as <code>Authorization: Bearer …</code>, or <code>berth login --token</code>.</p></div>`;
    });
  });
}

handlers["revoke-token"] = (b) => {
  if (!confirm("Revoke this token? Whatever uses it stops working.")) return;
  act(b, async () => {
    await api("DELETE", `/api/auth/tokens/${b.closest("[data-token]").dataset.token}`);
    return "token revoked";
  }, viewAccount);
};

// ---- users (admins) ----

async function viewUsers() {
  const [users, shares, quotas] = await Promise.all([apiAll("/api/users"), api("GET", "/api/shares"), api("GET", "/api/quotas")]);
  const quotaOf = Object.fromEntries(quotas.map((q) => [q.userId, q]));
  const usage = (u) => {
    const q = quotaOf[u.id];
    if (!q) return "";
    return quotaRows(q).filter((r) => !r.key.startsWith("site"))
      .map((r) => `<div class="usage" data-quota="${h(r.key)}" title="${h(r.label)}: ${h(r.text)}">${r.bar} <span class="num">${h(r.label.split(" ")[0].toLowerCase())} ${h(r.short)}</span></div>`).join("");
  };
  const emails = Object.fromEntries(users.map((u) => [u.id, u.email]));
  const others = (u) => users.filter((o) => o.id !== u.id)
    .map((o) => `<option value="${h(o.id)}">${h(o.email)}</option>`).join("");
  main.innerHTML = `
    <h1>Users</h1>
    <table id="users"><thead><tr><th>Email</th><th>Role</th><th>Projects</th><th>Workspaces</th><th>Usage of quota</th><th>Created</th><th></th></tr></thead><tbody>
      ${users.map((u) => `<tr data-user="${h(u.id)}" data-email="${h(u.email)}"><td>${h(u.email)}${u.id === me.id ? ` ${badge("you")}` : ""}</td>
        <td>${badge(u.role)}</td><td>${h(u.projects)}</td><td>${h(u.workspaces)}</td><td class="usages">${usage(u)}</td><td>${when(u.createdAt)}</td>
        <td class="actions">
          <button data-act="user-quota">Limits</button>
          <button data-act="user-role" data-role="${u.role === "admin" ? "member" : "admin"}">Make ${u.role === "admin" ? "member" : "admin"}</button>
          <button data-act="user-reset">Reset password</button>
          ${u.id === me.id ? "" : `${u.projects + u.workspaces > 0
            ? `<select data-heir title="Who receives their projects and workspaces"><option value="">hand their work to…</option>${others(u)}</select>` : ""}
          <button class="danger" data-act="user-remove">Remove</button>`}
        </td></tr>`).join("")}
    </tbody></table>
    <form class="inline" id="quota-form" hidden>
      <strong id="quota-who"></strong>
      <label>Workspaces <input name="workspaces" placeholder="role's"></label>
      <label>Running <input name="running" placeholder="role's"></label>
      <label>CPUs <input name="cpus" placeholder="role's"></label>
      <label>Memory MB <input name="memoryMb" placeholder="role's"></label>
      <label>Storage MB <input name="storageMb" placeholder="role's"></label>
      <button type="submit" class="primary">Set limits</button> <button type="button" data-act="quota-cancel">Cancel</button>
      <span class="muted">a number, <code>unlimited</code>, or empty for the role's default</span>
    </form>
    <form class="inline" id="reset-form" hidden>
      <label>New password for <strong id="reset-who"></strong> <input name="password" type="password" autocomplete="new-password" minlength="8" required></label>
      <button type="submit">Set password</button> <button type="button" data-act="reset-cancel">Cancel</button>
    </form>
    <h2>Add a user</h2>
    <form class="inline" id="user-form">
      <label>Email <input name="email" type="email" required></label>
      <label>Password <input name="password" type="password" autocomplete="new-password" minlength="8" required></label>
      <label>Role <select name="role"><option value="member">member</option><option value="admin">admin</option></select></label>
      <button class="primary" type="submit">Add user</button>
    </form>
    <p class="muted">They log in with this password and can change it under their account.</p>
    <h2>Shared ports</h2>
    <table id="shares"><thead><tr><th>Workspace</th><th>Owner</th><th>Port</th><th>Shared with</th><th>Since</th><th></th></tr></thead><tbody>
      ${shares.map((s) => `<tr data-share-ws="${h(s.workspaceId)}" data-share-port="${h(s.port)}">
        <td><a href="${h(openUrl(s.url))}" target="_blank" rel="noopener">${h(s.workspaceName)}</a></td>
        <td>${h(emails[s.ownerId] || s.ownerId)}</td><td>${h(s.port)}</td><td>${badge(s.level)}</td><td>${when(s.createdAt)}</td>
        <td><button class="danger" data-act="share-revoke">Revoke</button></td></tr>`).join("")
        || `<tr><td colspan="6" class="muted">No workspace port is shared.</td></tr>`}
    </tbody></table>`;
  document.querySelectorAll("#shares button[data-act=share-revoke]").forEach((b) => b.addEventListener("click", (ev) => {
    ev.stopPropagation();
    const row = b.closest("tr");
    act(b, async () => {
      await api("DELETE", `/api/workspaces/${row.dataset.shareWs}/shares/${row.dataset.sharePort}`);
      return `port ${row.dataset.sharePort} no longer shared`;
    }, viewUsers);
  }));
  document.getElementById("user-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    act(ev.submitter, async () => {
      const u = await api("POST", "/api/users", { email: f.get("email"), password: f.get("password"), role: f.get("role") });
      return `added ${u.email}`;
    }, viewUsers);
  });
  document.getElementById("quota-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const body = {};
    for (const k of ["workspaces", "running", "cpus", "memoryMb", "storageMb"]) {
      const v = String(f.get(k) || "").trim();
      if (v === "") continue;
      body[k] = v === "unlimited" ? "unlimited" : Number(v);
      if (body[k] !== "unlimited" && !(body[k] >= 0)) { flash(`${k}: a number, unlimited, or empty`, true); return; }
    }
    act(ev.submitter, async () => {
      const q = await api("PUT", `/api/users/${ev.target.dataset.user}/quota`, body);
      return `limits set for ${q.email}`;
    }, viewUsers);
  });
  document.getElementById("reset-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    act(ev.submitter, async () => {
      await api("PATCH", `/api/users/${ev.target.dataset.user}`, { password: f.get("password") });
      return `password set for ${document.getElementById("reset-who").textContent}; their sessions are logged out`;
    }, viewUsers);
  });
}

handlers["user-role"] = (b) => {
  const row = b.closest("[data-user]");
  act(b, async () => {
    const u = await api("PATCH", `/api/users/${row.dataset.user}`, { role: b.dataset.role });
    return `${u.email} is now ${u.role}`;
  }, async () => {
    if (row.dataset.user === me.id) me = await api("GET", "/api/auth/me");
    await route();
  });
};
handlers["user-reset"] = (b) => {
  const row = b.closest("[data-user]");
  const form = document.getElementById("reset-form");
  form.dataset.user = row.dataset.user;
  document.getElementById("reset-who").textContent = row.dataset.email;
  form.hidden = false;
  form.querySelector("input").focus();
};
handlers["reset-cancel"] = () => { document.getElementById("reset-form").hidden = true; };
handlers["quota-cancel"] = () => { document.getElementById("quota-form").hidden = true; };
handlers["user-quota"] = async (b) => {
  const row = b.closest("[data-user]");
  const form = document.getElementById("quota-form");
  form.dataset.user = row.dataset.user;
  document.getElementById("quota-who").textContent = row.dataset.email;
  const q = await api("GET", `/api/users/${row.dataset.user}/quota`);
  const set = (name, item) => {
    form.elements[name].value = item.source === "user" ? (item.limit == null ? "unlimited" : String(item.limit)) : "";
  };
  set("workspaces", q.workspaces);
  set("running", q.running);
  set("cpus", q.cpus);
  set("memoryMb", q.memoryMb);
  set("storageMb", { source: q.storage.source, limit: q.storage.limit == null ? null : q.storage.limit / 1048576 });
  form.hidden = false;
  form.querySelector("input").focus();
};

// ---- audit log (admins) ----

async function viewAudit() {
  const users = await apiAll("/api/users");
  const q = new URLSearchParams((location.hash.split("?")[1]) || "");
  main.innerHTML = `
    <h1>Audit log</h1>
    <form class="inline" id="audit-filter">
      <label>User <select name="user"><option value="">anyone</option>
        ${users.map((u) => `<option value="${h(u.id)}">${h(u.email)}</option>`).join("")}</select></label>
      <label>Action <input name="action" placeholder="e.g. startWorkspace, login"></label>
      <label>Resource <input name="resource" placeholder="an id or a name"></label>
      <label>Since <input name="since" type="datetime-local"></label>
      <button type="submit">Filter</button>
    </form>
    <table id="audit"><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Resource</th><th>Outcome</th><th>From</th></tr></thead><tbody></tbody></table>
    <p><button id="audit-more" hidden>Older</button></p>`;
  const form = document.getElementById("audit-filter");
  const tbody = document.querySelector("#audit tbody");
  const more = document.getElementById("audit-more");
  let cursor = null;
  const load = async (reset) => {
    const f = new FormData(form);
    const params = new URLSearchParams({ limit: "50" });
    for (const k of ["user", "action", "resource"]) if (f.get(k)) params.set(k, f.get(k));
    if (f.get("since")) params.set("since", new Date(f.get("since")).toISOString());
    if (!reset && cursor) params.set("cursor", cursor);
    const r = await fetch(`/api/audit?${params}`, { credentials: "same-origin" });
    const v = await r.json();
    if (!r.ok) throw new ApiError(r.status, v.error ? v.error.message : r.statusText);
    if (reset) tbody.innerHTML = "";
    tbody.insertAdjacentHTML("beforeend", v.data.map((a) => {
      const who = a.actor.email || (a.actor.credential === "cli" ? `cli (${a.actor.credentialName || "?"})` : "anonymous");
      const cred = a.actor.credential === "token" ? ` <span class="muted">token ${h(a.actor.credentialName || "")}</span>`
        : a.actor.credential === "none" && a.actor.email ? ` <span class="muted">(not signed in)</span>` : "";
      const res = a.resourceType ? `${h(a.resourceType)} <span class="short">${h(a.resourceId || "")}</span>` : "–";
      const owner = a.ownerId ? ` <span class="muted">of ${h((users.find((u) => u.id === a.ownerId) || {}).email || a.ownerId)}</span>` : "";
      const outcome = a.outcome === "done" ? badge("done")
        : `<span class="badge failed">${h(a.outcome)}</span> <span class="muted">${h(a.status ?? "")} ${h(a.code ?? "")}</span>`;
      return `<tr data-audit="${h(a.id)}"><td class="nowrap">${when(a.at)}</td><td>${h(who)}${cred}</td>
        <td class="mono">${h(a.action)}</td><td>${res}${owner}</td><td>${outcome}</td>
        <td class="muted">${h(a.actor.client || "")}</td></tr>`;
    }).join("") || (reset ? `<tr><td colspan="6" class="muted">Nothing recorded matches.</td></tr>` : ""));
    cursor = v.page && v.page.nextCursor;
    more.hidden = !cursor;
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); act(ev.submitter, () => load(true)); });
  more.addEventListener("click", () => act(more, () => load(false)));
  if (q.get("action")) form.elements.action.value = q.get("action");
  await load(true);
}
handlers["user-remove"] = (b) => {
  const row = b.closest("[data-user]");
  const heir = row.querySelector("[data-heir]");
  if (heir && !heir.value) { flash(`choose who receives ${row.dataset.email}'s projects and workspaces`, true); return; }
  const to = heir ? heir.selectedOptions[0].textContent : null;
  if (!confirm(`Remove ${row.dataset.email}?${to ? ` Their projects, workspaces and backups go to ${to}.` : ""}`)) return;
  act(b, async () => {
    await api("DELETE", `/api/users/${row.dataset.user}${heir ? `?transferTo=${encodeURIComponent(heir.value)}` : ""}`);
    return `removed ${row.dataset.email}`;
  }, viewUsers);
};

route();
