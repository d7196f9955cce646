// The dashboard's script: relative times, the action buttons, and a poll
// that keeps the page's rows fresh from JSON while the tab is visible.
// Every URL is relative: `root` leads from this page to the dashboard's own
// "/" (wherever the app mounts it), and the API is at api/v1/ beside it.
"use strict";
const body = document.body;
const root = body.dataset.root || "./";
// Relative times count from the scheduler's clock, not the browser's: the
// difference is measured when the page (or a poll's answer) arrives.
let skew = 0;
function setNow(iso) { const t = Date.parse(iso); if (!isNaN(t)) skew = t - Date.now(); }
setNow(body.dataset.now);

// Actions send the API token (kept in this tab's sessionStorage, never in a URL).
const tokenInput = document.getElementById("token");
if (tokenInput) {
  tokenInput.value = sessionStorage.getItem("chime-token") || "";
  tokenInput.addEventListener("change", () => sessionStorage.setItem("chime-token", tokenInput.value));
}
function flash(text, bad) {
  const f = document.getElementById("flash");
  f.textContent = text;
  f.className = "small " + (bad ? "bad" : "ok");
  f.style.color = bad ? "var(--bad)" : "var(--ok)";
}
async function act(button) {
  const action = button.dataset.action, id = button.dataset.id;
  const headers = { "content-type": "application/json" };
  const token = sessionStorage.getItem("chime-token");
  if (token) headers["authorization"] = "Bearer " + token;
  let body = "";
  if (action === "pause") {
    const field = document.getElementById("pause-reason");
    const reason = (field && field.value.trim()) || "paused from the dashboard";
    body = JSON.stringify({ reason });
  } else if (action === "reschedule") {
    const expr = document.getElementById("reschedule-expr").value.trim();
    if (!expr) { flash("reschedule: give a cron expression", true); return; }
    body = JSON.stringify({ trigger: { type: "cron", expr, timezone: button.dataset.zone } });
  }
  button.disabled = true;
  try {
    const res = await fetch(root + "api/v1/jobs/" + encodeURIComponent(id) + "/" + action, { method: "POST", headers, body });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) { flash((json.error && json.error.message) || res.statusText, true); return; }
    flash(action + ": " + id);
    poll(true);
  } finally { button.disabled = false; }
}
// The job page's timeline: a mark tapped (or focused) says what happened then.
function pickMark(mark) {
  document.querySelectorAll(".why-mark.picked").forEach((m) => m.classList.remove("picked"));
  mark.classList.add("picked");
  const detail = document.getElementById("why-detail");
  if (detail) detail.textContent = mark.dataset.words;
}
document.addEventListener("focusin", (e) => { const m = e.target.closest(".why-mark"); if (m) pickMark(m); });
document.addEventListener("click", (e) => {
  const mark = e.target.closest(".why-mark");
  if (mark) pickMark(mark);
  const b = e.target.closest("button[data-action]");
  if (b) act(b);
  if (e.target.closest("button[data-reload]")) location.reload();
});

// "in 3h 12m", "2m ago": the words the server writes too.
function human(ms) {
  let s = Math.round(Math.abs(ms) / 1000);
  const parts = [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]].map(([n, u]) => { const v = Math.floor(s / n); s -= v * n; return [v, u]; });
  const i = parts.findIndex(([v]) => v > 0);
  if (i < 0) return "0s";
  return parts.slice(i, i + 2).filter(([v], j) => j === 0 || v > 0).map(([v, u]) => v + u).join(" ");
}
function relative(iso) {
  const ms = Date.parse(iso) - (Date.now() + skew);
  return ms >= 0 ? "in " + human(ms) : human(ms) + " ago";
}
// Times in the viewer's zone, when they choose (kept in localStorage): every
// <time datetime> is rewritten from its instant; the server's text (the
// job's zone) is kept to switch back.
const myZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "this browser's zone";
function pad(n) { return String(n).padStart(2, "0"); }
function inMyZone(iso) {
  const d = new Date(iso), off = -d.getTimezoneOffset(), a = Math.abs(off);
  const secs = d.getSeconds() ? ":" + pad(d.getSeconds()) : "";
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" +
    pad(d.getMinutes()) + secs + " " + (off >= 0 ? "+" : "-") + pad(Math.floor(a / 60)) + ":" + pad(a % 60);
}
function applyZone() {
  const mine = localStorage.getItem("chime-zone") === "mine";
  for (const t of document.querySelectorAll("time[datetime]")) {
    const iso = t.getAttribute("datetime");
    if (!iso) continue;
    if (t.dataset.jobText === undefined) t.dataset.jobText = t.textContent;
    t.textContent = mine ? inMyZone(iso) : t.dataset.jobText;
  }
  const toggle = document.getElementById("zone-toggle");
  if (toggle) {
    toggle.setAttribute("aria-pressed", String(mine));
    toggle.textContent = mine ? "Times: " + myZone : "Times: each job's zone";
  }
}
document.getElementById("zone-toggle")?.addEventListener("click", () => {
  localStorage.setItem("chime-zone", localStorage.getItem("chime-zone") === "mine" ? "job" : "mine");
  applyZone();
});

function tick() {
  for (const el of document.querySelectorAll("[data-at]")) {
    if (el.dataset.at) el.textContent = relative(el.dataset.at);
  }
}

// The jobs page: one row per job shown, updated in place from jobs.json.
function field(row, name) { return row.querySelector('[data-f="' + name + '"]'); }
function setPill(el, word) {
  if (!el) return;
  el.textContent = word;
  el.className = "pill " + word;
  // A label that names the pill ("scheduler running") follows its word.
  if (el.dataset.label) el.setAttribute("aria-label", el.dataset.label + " " + word);
}
function setWhen(row, name, shown, empty) {
  const time = field(row, name), rel = field(row, name + "-rel");
  if (!time || !rel) return;
  time.textContent = shown ? shown.local : empty;
  time.dataset.jobText = time.textContent;
  time.setAttribute("datetime", shown ? shown.iso : "");
  time.title = shown ? shown.zone + " · " + shown.iso : "";
  rel.dataset.at = shown ? shown.iso : "";
  rel.textContent = shown ? shown.relative : "";
}
function updateJobs(data) {
  for (const [word, n] of Object.entries(data.counts)) {
    const el = document.querySelector('[data-count="' + word + '"]');
    if (el) el.textContent = n;
  }
  const shown = [...document.querySelectorAll("tr[data-job]")].map((tr) => tr.dataset.job);
  const fresh = data.rows.map((r) => r.id);
  const stale = document.getElementById("stale");
  if (stale) stale.hidden = shown.join("\n") === fresh.join("\n");
  for (const r of data.rows) {
    const row = document.querySelector('tr[data-job="' + CSS.escape(r.id) + '"]');
    if (!row) continue;
    setPill(field(row, "status"), r.status);
    field(row, "reason").textContent = r.paused || "";
    setWhen(row, "next", r.next, r.paused ? "paused" : "finished");
    const last = r.last;
    const pill = field(row, "last-status");
    pill.hidden = !last;
    if (last) setPill(pill, last.status);
    setWhen(row, "last", last && last.at, last ? "" : "never run");
    field(row, "last-duration").textContent = last ? last.duration : "";
    const toggle = field(row, "toggle");
    toggle.dataset.action = r.paused ? "resume" : "pause";
    toggle.textContent = r.paused ? "Resume" : "Pause";
    toggle.setAttribute("aria-label", (r.paused ? "Resume " : "Pause ") + r.name);
  }
}

// The job page: when the job or its newest run changed, its live part is
// fetched again and swapped in (one small JSON check per poll otherwise).
let signature = null;
async function updateJob() {
  const id = body.dataset.job;
  const [job, runs] = await Promise.all([
    fetch(root + "api/v1/jobs/" + encodeURIComponent(id) + "?next=0").then((r) => r.json()),
    fetch(root + "api/v1/runs?limit=1&job=" + encodeURIComponent(id)).then((r) => r.json()),
  ]);
  const now = JSON.stringify([job.job && job.job.state, runs[0] && [runs[0].id, runs[0].status, runs[0].attempt]]);
  if (signature !== null && now !== signature) {
    const html = await (await fetch(location.href, { headers: { accept: "text/html" } })).text();
    const doc = new DOMParser().parseFromString(html, "text/html");
    const fresh = doc.getElementById("live"), old = document.getElementById("live");
    if (fresh && old) old.replaceWith(fresh);
    setNow(doc.body.dataset.now);
    applyZone();
  }
  signature = now;
}

async function poll(force) {
  if (document.hidden && !force) return;
  try {
    if (body.dataset.page === "jobs") {
      const res = await fetch(root + "jobs.json" + location.search, { headers: { accept: "application/json" } });
      if (!res.ok) return;
      const data = await res.json();
      setNow(data.now);
      const state = document.getElementById("state");
      if (state) setPill(state, data.state);
      updateJobs(data);
      applyZone();
    } else if (body.dataset.page === "job") {
      await updateJob();
    }
    tick();
  } catch (e) { /* the server may be restarting; try again at the next poll */ }
}
applyZone();
tick();
setInterval(tick, 1000);
setInterval(poll, 5000);
// A tab coming back into view catches up at once.
document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
if (body.dataset.page === "job") poll(true);
