// The Reports page: every figure of GET /api/reports for a date range and a team, charts over time (Chart.js, from
// npm, served by the relay), the handoff health panel, and each table with a CSV download (GET /api/reports/csv/...).
// Admins choose any team or all; agents see their own team. Text goes in as textContent only.
(function () {
  "use strict";
  const { $, el, show, errorMessage, request, login } = window.warmlineUI;
  const TOKEN_KEY = "warmline.agent_token"; // shared with the console (agent.js): one login per tab
  const ROLE_KEY = "warmline.agent_role";
  const DAY_MS = 86400000;
  const charts = {};
  let token = sessionStorage.getItem(TOKEN_KEY);

  // How figures are written; the browser test reads these exact strings.
  function pct(x) { return x == null ? "–" : (x * 100).toFixed(1) + " %"; }
  function secs(x) { return x == null ? "–" : (x < 1 ? x.toFixed(3) : x.toFixed(1)) + " s"; }
  function num(x) { return x == null ? "–" : String(x); }
  function score(x) { return x == null ? "–" : x.toFixed(2); }

  function isoDay(date) { return date.toISOString().slice(0, 10); }

  function query() {
    const params = new URLSearchParams({ start: $("start").value, end: $("end").value });
    if ($("team").value) params.set("team", $("team").value);
    return params.toString();
  }

  function figure(dl, key, label, value, note) {
    const box = el("div");
    box.appendChild(el("dt", null, label));
    const dd = el("dd");
    const shown = el("span", null, value);
    shown.dataset.figure = key;
    dd.appendChild(shown);
    if (note) dd.appendChild(el("small", null, note));
    box.appendChild(dd);
    dl.appendChild(box);
  }

  function csatNote(c) {
    return c.ratings + " ratings of " + c.rateable + " · response " + pct(c.response_rate) + " · mean " + score(c.mean_score);
  }

  function durNote(d) { return "p90 " + secs(d.p90_s) + " · mean " + secs(d.mean_s) + " · n " + d.count; }

  function renderOverview(r) {
    const dl = $("overview");
    dl.replaceChildren();
    figure(dl, "conversations", "Conversations", num(r.overview.conversations));
    figure(dl, "deflection_rate", "Deflection rate", pct(r.overview.deflection_rate),
      r.overview.deflected + " closed by the bot · " + r.overview.said_no + " said no");
    figure(dl, "escalations", "Escalations", num(r.overview.escalations));
    figure(dl, "csat_bot_only", "CSAT bot-only", pct(r.csat.bot_only.csat), csatNote(r.csat.bot_only));
    figure(dl, "csat_escalated", "CSAT escalated", pct(r.csat.escalated.csat), csatNote(r.csat.escalated));
    figure(dl, "csat_transferred", "CSAT transferred", pct(r.csat.transferred.csat), csatNote(r.csat.transferred));
    figure(dl, "time_to_seat_p50", "Time to seat (p50)", secs(r.handoff.time_to_seat.p50_s), durNote(r.handoff.time_to_seat));
    figure(dl, "first_response_p50", "First agent response (p50)", secs(r.handoff.first_response.p50_s),
      durNote(r.handoff.first_response));
    figure(dl, "handle_p50", "Handle time from joining (p50)", secs(r.handoff.handle_time.p50_s),
      durNote(r.handoff.handle_time));
    figure(dl, "handle_first_mean", "Handle time, first segments (mean)", secs(r.handoff.transfer.first_segments.mean_s),
      "n " + r.handoff.transfer.first_segments.count);
    figure(dl, "handle_after_transfer_mean", "Handle time after a transfer (mean)",
      secs(r.handoff.transfer.after_transfer.mean_s),
      "n " + r.handoff.transfer.after_transfer.count + " · " + r.handoff.transfer.transferred_tickets + " transferred tickets");
  }

  function renderHealth(h) {
    const box = $("health-checks");
    box.replaceChildren();
    h.checks.forEach(function (c) {
      const isTime = c.name === "handle_time";
      const fmt = isTime ? secs : pct;
      const card = el("article", "check" + (c.flagged ? " check--flagged" : ""));
      card.dataset.check = c.name;
      card.dataset.flagged = String(c.flagged);
      card.appendChild(el("h3", null, c.handoff.label + " against " + c.baseline.label));
      const sides = el("div", "check__sides");
      [c.baseline, c.handoff].forEach(function (side, i) {
        const s = el("div", "check__side");
        s.appendChild(el("span", null, side.label));
        const value = el("strong", null, fmt(side.value));
        value.dataset.side = i === 0 ? "baseline" : "handoff";
        s.appendChild(value);
        s.appendChild(el("small", null, "n " + side.count));
        sides.appendChild(s);
      });
      card.appendChild(sides);
      let verdict;
      if (c.worse_by == null) verdict = "Not enough data to compare.";
      else {
        const unit = isTime ? " %" : " pts";
        const gap = Math.abs(c.worse_by).toFixed(1) + unit;
        verdict = (c.worse_by > 0 ? "Worse by " + gap : "Not worse (better by " + gap + ")") +
          "; margin " + c.margin.toFixed(1) + unit + (c.flagged ? ": FLAGGED" : ".");
      }
      const v = el("p", "check__verdict", verdict);
      v.dataset.verdict = c.name;
      card.appendChild(v);
      box.appendChild(card);
    });
  }

  function chart(id, type, labels, datasets, yMax) {
    if (charts[id]) charts[id].destroy();
    charts[id] = new window.Chart($(id), {
      type: type,
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, suggestedMax: yMax } },
        plugins: { legend: { labels: { color: "#1b2330" } } },
      },
    });
  }

  function renderCharts(daily) {
    const days = daily.map(function (d) { return d.day; });
    const series = function (key) { return daily.map(function (d) { return d[key]; }); };
    chart("chart-volume", "bar", days, [
      { label: "Conversations", data: series("conversations"), backgroundColor: "#5b8cff" },
      { label: "Escalations", data: series("escalations"), backgroundColor: "#f5a623" },
    ]);
    chart("chart-deflection", "line", days, [
      { label: "Deflection rate", data: daily.map(function (d) { return d.conversations ? d.deflected / d.conversations : null; }),
        borderColor: "#3fb37f", spanGaps: true },
    ], 1);
    chart("chart-csat", "line", days, [
      { label: "Bot-only", data: series("csat_bot_only"), borderColor: "#5b8cff", spanGaps: true },
      { label: "Escalated", data: series("csat_escalated"), borderColor: "#f5a623", spanGaps: true },
      { label: "Transferred", data: series("csat_transferred"), borderColor: "#e5484d", spanGaps: true },
    ], 1);
    chart("chart-times", "line", days, [
      { label: "Time to seat p50 (s)", data: series("time_to_seat_p50_s"), borderColor: "#f5a623", spanGaps: true },
      { label: "Handle time p50 (s)", data: series("handle_p50_s"), borderColor: "#5b8cff", spanGaps: true },
    ]);
  }

  async function downloadCsv(table) {
    const response = await fetch("/api/reports/csv/" + table + "?" + query(), { headers: { Authorization: "Bearer " + token } });
    if (!response.ok) { show("report-error", "Could not export " + table + " (" + response.status + ")"); return; }
    const blob = await response.blob();
    const match = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
    const link = el("a");
    link.href = URL.createObjectURL(blob);
    link.download = match ? match[1] : table + ".csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  }

  // One table: a title, a CSV button, columns as [header, value of a row].
  function table(id, title, rows, columns) {
    const box = el("section", "report-table");
    box.dataset.table = id;
    const head = el("header");
    head.appendChild(el("h2", null, title));
    const button = el("button", "secondary", "Download CSV");
    button.type = "button";
    button.dataset.csv = id;
    button.addEventListener("click", function () { downloadCsv(id); });
    head.appendChild(button);
    box.appendChild(head);
    const t = el("table");
    const tr = el("tr");
    columns.forEach(function (c) { tr.appendChild(el("th", null, c[0])); });
    const thead = el("thead");
    thead.appendChild(tr);
    t.appendChild(thead);
    const body = el("tbody");
    rows.forEach(function (row) {
      const line = el("tr");
      columns.forEach(function (c) { line.appendChild(el("td", null, c[1](row))); });
      body.appendChild(line);
    });
    if (!rows.length) {
      const empty = el("tr");
      const cell = el("td", null, "Nothing in this period.");
      cell.colSpan = columns.length;
      empty.appendChild(cell);
      body.appendChild(empty);
    }
    t.appendChild(body);
    box.appendChild(t);
    return box;
  }

  function renderTables(r) {
    const box = $("tables");
    box.replaceChildren(
      table("reasons", "Escalations by reason", r.escalations_by_reason,
        [["Reason", function (x) { return x.key; }], ["Escalations", function (x) { return num(x.count); }]]),
      table("escalated_articles", "Escalations by article", r.escalations_by_article,
        [["Article", function (x) { return x.key; }], ["Escalations", function (x) { return num(x.count); }]]),
      table("articles", "Articles", r.articles, [
        ["Article", function (a) { return a.article_id; }], ["Answered", function (a) { return num(a.answered); }],
        ["Helpful yes", function (a) { return num(a.helpful_yes); }], ["Helpful no", function (a) { return num(a.helpful_no); }],
        ["Escalated after", function (a) { return num(a.escalated_after); }],
      ]),
      table("agents", "Agents", r.agents, [
        ["Agent", function (a) { return a.agent; }], ["Segments", function (a) { return num(a.segments); }],
        ["Resolved", function (a) { return num(a.resolved); }], ["Handle mean", function (a) { return secs(a.handle.mean_s); }],
        ["After transfer mean", function (a) { return secs(a.after_transfer.mean_s); }],
        ["CSAT", function (a) { return pct(a.csat.csat); }], ["Ratings", function (a) { return num(a.csat.ratings); }],
      ]),
      table("teams", "Teams", r.teams, [
        ["Team", function (t) { return t.team; }], ["Tickets", function (t) { return num(t.tickets); }],
        ["Time to seat p50", function (t) { return secs(t.time_to_seat.p50_s); }],
        ["Handle p50", function (t) { return secs(t.handle_time.p50_s); }],
        ["CSAT", function (t) { return pct(t.csat.csat); }], ["Ratings", function (t) { return num(t.csat.ratings); }],
      ]),
      table("daily", "Per day", r.daily, [
        ["Day", function (d) { return d.day; }], ["Conversations", function (d) { return num(d.conversations); }],
        ["Deflected", function (d) { return num(d.deflected); }], ["Escalations", function (d) { return num(d.escalations); }],
        ["CSAT bot-only", function (d) { return pct(d.csat_bot_only); }],
        ["CSAT escalated", function (d) { return pct(d.csat_escalated); }],
        ["CSAT transferred", function (d) { return pct(d.csat_transferred); }],
        ["Seat p50", function (d) { return secs(d.time_to_seat_p50_s); }],
      ]),
    );
  }

  function fillTeams(filter) {
    const select = $("team");
    const chosen = filter.team || "";
    select.replaceChildren();
    if (filter.all_teams) select.appendChild(new Option("All teams", ""));
    filter.teams.forEach(function (name) { select.appendChild(new Option(name, name)); });
    select.value = chosen;
  }

  async function load() {
    show("report-error", "");
    const reply = await request("GET", "/api/reports?" + query(), { token: token });
    if (reply.status === 401) { logout(); return; }
    if (!reply.ok) { show("report-error", errorMessage(reply.data, "Could not load the reports")); return; }
    const f = reply.data.filter;
    const r = reply.data.report;
    fillTeams(f);
    $("range").textContent = "From " + f.start.slice(0, 10) + " to " + isoDay(new Date(Date.parse(f.end) - DAY_MS)) +
      " (UTC) · " + (f.team ? "team " + f.team : "all teams");
    renderHealth(r.health);
    renderOverview(r);
    renderCharts(r.daily);
    renderTables(r);
    document.body.dataset.loaded = String(Date.now()); // the browser test waits on this
  }

  function logout() {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("reports").hidden = true;
    $("login").hidden = false;
  }

  function start() {
    $("login").hidden = true;
    $("reports").hidden = false;
    if (!$("start").value) {
      const today = new Date();
      $("end").value = isoDay(today);
      $("start").value = isoDay(new Date(today.getTime() - 29 * DAY_MS));
    }
    load();
  }

  $("login-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const reply = await login($("username").value, $("password").value);
    if (!reply.ok) { show("login-error", reply.message); return; }
    token = reply.token;
    sessionStorage.setItem(TOKEN_KEY, reply.token);
    sessionStorage.setItem(ROLE_KEY, reply.agent.role);
    start();
  });
  $("filter").addEventListener("submit", function (event) { event.preventDefault(); load(); });

  if (token) start(); else $("login").hidden = false;
})();
