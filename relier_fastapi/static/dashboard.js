// Relier dashboard: polls the admin API next to this page and redraws it.
// Every value is inserted as text (textContent), never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "relier-admin-token";
  const base = new URL(".", window.location.href);
  const refreshMs = Math.max(500, Number(document.body.dataset.refreshMs) || 2000);
  let paused = false;
  let timer = null;
  let detailId = null;

  const $ = (id) => document.getElementById(id);

  function token() {
    return window.sessionStorage.getItem(TOKEN_KEY);
  }

  class AuthError extends Error {}

  async function api(path, options) {
    const headers = { Accept: "application/json" };
    if (options && options.body) headers["Content-Type"] = "application/json";
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const response = await fetch(new URL(path, base), {
      credentials: "same-origin",
      ...options,
      headers,
    });
    if (response.status === 401 || response.status === 403) {
      throw new AuthError(response.status === 401 ? "sign in" : "the token was refused");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(`${path}: HTTP ${response.status} ${body.detail || ""}`.trim());
    }
    return body;
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "–";
    const s = ms / 1000;
    if (s < 1) return `${Math.round(ms)} ms`;
    if (s < 60) return `${s.toFixed(1)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} m ${Math.floor(s % 60)} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} m`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (className) td.className = className;
    return td;
  }

  function taskLink(id) {
    const td = document.createElement("td");
    const a = document.createElement("a");
    a.className = "task";
    a.textContent = id;
    a.title = "show this task's history";
    a.addEventListener("click", () => showDetail(id));
    td.appendChild(a);
    return td;
  }

  function fill(tableId, rows, columns, empty) {
    const tbody = $(tableId).tBodies[0];
    const fresh = document.createElement("tbody");
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = cell(empty, "empty");
      td.colSpan = columns;
      tr.appendChild(td);
      fresh.appendChild(tr);
    }
    for (const cells of rows) {
      const tr = document.createElement("tr");
      for (const c of cells) tr.appendChild(c);
      fresh.appendChild(tr);
    }
    tbody.replaceWith(fresh);
  }

  function drawStatus(st) {
    for (const el of document.querySelectorAll("[data-field]")) {
      el.textContent = String(st[el.dataset.field]);
    }
    const rates = Object.keys(st.rates.counts).map((e) => [
      cell(e), cell(st.rates.counts[e]), cell(st.rates.per_minute[e]),
    ]);
    fill("rates", rates, 3, "no events");
    const queues = st.queues.map((q) => [cell(q.name), cell(q.depth)]);
    fill("queues", queues, 2, "no queues");
  }

  function drawInflight(tasks) {
    const rows = tasks.map((t) => [
      taskLink(t.id), cell(t.task), cell(t.state), cell(t.queue),
      cell(t.worker_id, t.worker_alive ? "" : "dead"), cell(t.attempt), cell(duration(t.elapsed_ms)),
    ]);
    fill("inflight", rows, 7, "nothing runs right now");
  }

  function drawWorkers(workers) {
    const rows = workers.map((w) => [
      cell(w.worker_id), cell(w.alive ? "yes" : "no (lease expired)", w.alive ? "alive" : "dead"),
      cell(w.host), cell(w.pid), cell(duration(w.uptime_ms)), cell(duration(w.lease_age_ms)),
      cell(w.running), cell(w.reserved),
    ]);
    fill("workers", rows, 8, "no worker is running");
  }

  function actionButton(label, onClick) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await onClick();
      } catch (err) {
        report(err);
      }
      await refresh();
    });
    return button;
  }

  function drawDlq(page, now) {
    const rows = page.entries.map((e) => {
      const actions = document.createElement("td");
      actions.appendChild(actionButton("Release", () => act("release", e.id)));
      actions.appendChild(document.createTextNode(" "));
      actions.appendChild(actionButton("Purge", async () => {
        if (window.confirm(`Delete task ${e.id} for good?`)) await act("purge", e.id);
      }));
      return [
        taskLink(e.id), cell(e.task), cell(e.reason), cell(duration(now - e.died_ms) + " ago"),
        cell(e.attempts), cell(e.error, "error"), actions,
      ];
    });
    fill("dlq", rows, 7, "the dead letter queue is empty");
    $("dlq-more").hidden = !page.truncated;
  }

  async function act(action, id) {
    const result = await api(`dlq/${action}`, {
      method: "POST",
      body: JSON.stringify({ ids: [id] }),
    });
    const refused = result.refused[id];
    if (refused) throw new Error(`not ${action}d: ${id} is ${refused}`);
  }

  async function showDetail(id) {
    detailId = id;
    try {
      const t = await api(`tasks/${encodeURIComponent(id)}`);
      $("detail-id").textContent = t.id;
      const dl = document.createElement("dl");
      dl.id = "detail-fields";
      const shown = ["task", "state", "queue", "attempt", "fence", "failures", "resurrections",
        "owner", "reason", "error", "result", "envelope", "traceback"];
      for (const name of shown) {
        if (t[name] === null || t[name] === "" || t[name] === undefined) continue;
        const dt = document.createElement("dt");
        dt.textContent = name;
        const dd = document.createElement("dd");
        dd.textContent = String(t[name]);
        dl.append(dt, dd);
      }
      $("detail-fields").replaceWith(dl);
      const rows = t.history.map((ev) => {
        const { t: time, e: event, ...rest } = ev;
        return [cell(new Date(time).toISOString()), cell(event), cell(JSON.stringify(rest))];
      });
      fill("detail-history", rows, 3, "no history");
      $("detail").hidden = false;
    } catch (err) {
      report(err);
    }
  }

  function report(err) {
    if (err instanceof AuthError) {
      $("login").hidden = false;
      $("error").hidden = true;
      return;
    }
    $("error").textContent = err.message || String(err);
    $("error").hidden = false;
  }

  async function refresh() {
    window.clearTimeout(timer);
    if (document.hidden) {
      // A background tab does not poll; visibilitychange resumes it.
      return;
    }
    try {
      const [st, inflight, workers, page] = await Promise.all([
        api("status"), api("inflight"), api("workers"), api("dlq?limit=50"),
      ]);
      drawStatus(st);
      drawInflight(inflight);
      drawWorkers(workers);
      drawDlq(page, st.now_ms);
      $("error").hidden = true;
      $("login").hidden = true;
      $("updated").textContent = "updated " + new Date(st.now_ms).toLocaleTimeString();
      if (detailId !== null && !$("detail").hidden) await showDetail(detailId);
    } catch (err) {
      report(err);
    }
    $("forget").hidden = !token();
    if (!paused) timer = window.setTimeout(refresh, refreshMs);
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    window.sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    refresh();
  });
  $("forget").addEventListener("click", () => {
    window.sessionStorage.removeItem(TOKEN_KEY);
    refresh();
  });
  $("pause").addEventListener("click", () => {
    paused = !paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    if (!paused) refresh();
    else window.clearTimeout(timer);
  });
  $("detail-close").addEventListener("click", () => {
    $("detail").hidden = true;
    detailId = null;
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !paused) refresh();
  });
  refresh();
})();
