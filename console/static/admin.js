// Admin tab of the console: agents (role, capacity, teams), teams (business hours, default), canned responses.
// REST under /api/admin with the console's bearer token; the server checks the admin role on every request.
// Values are shown with textContent only.
(function () {
  "use strict";
  const ui = window.warmlineUI;
  const $ = ui.$;

  function row(cells) { const tr = ui.el("tr"); cells.forEach(function (c) { tr.appendChild(c instanceof Node ? wrap(c) : ui.el("td", null, c)); }); return tr; }
  function wrap(node) { const td = ui.el("td"); td.appendChild(node); return td; }
  function showError(text) { ui.show("admin-error", text); }

  async function call(method, path, body) {
    const token = sessionStorage.getItem("warmline.agent_token");
    const reply = await ui.request(method, "/api/admin" + path, { token: token, body: body || undefined });
    if (!reply.ok) throw new Error(ui.errorMessage(reply.data, "Request failed"));
    return reply.data;
  }

  function minutes(seconds) { return seconds == null ? "–" : (seconds / 60).toFixed(1) + " min"; }

  function hoursText(hours) {
    if (!hours) return "always open";
    return hours.start + "–" + hours.end + " " + hours.tz + " (days " + hours.days.join(",") + ")";
  }

  async function load() {
    showError("");
    try {
      const [agents, teams, canned, report] = await Promise.all([
        call("GET", "/agents"), call("GET", "/teams"), call("GET", "/canned"), call("GET", "/reports/handle-time"),
      ]);
      $("admin-report").replaceChildren.apply($("admin-report"), Object.keys(report.agents).map(function (name) {
        const r = report.agents[name];
        return row([name, String(r.segments), minutes(r.avg_handle_s), minutes(r.avg_after_transfer_s)]);
      }));
      $("admin-agents").replaceChildren.apply($("admin-agents"), agents.agents.map(function (a) {
        return row([a.username, a.name, a.role, a.presence, String(a.capacity), a.teams.join(", ") || "(default team)"]);
      }));
      $("admin-teams").replaceChildren.apply($("admin-teams"), teams.teams.map(function (t) {
        return row([t.name, t.title, t.is_default ? "yes" : "", hoursText(t.hours)]);
      }));
      $("admin-canned").replaceChildren.apply($("admin-canned"), canned.canned.map(function (c) {
        const remove = ui.el("button", null, "Delete"); remove.type = "button"; remove.className = "secondary";
        remove.addEventListener("click", async function () {
          try { await call("DELETE", "/canned/" + c.id); load(); } catch (e) { showError(e.message); }
        });
        return row(["/" + c.shortcut, c.title, c.team || "shared", c.body, remove]);
      }));
    } catch (e) { showError(e.message); }
  }

  function values(form) { return Object.fromEntries(new FormData(form).entries()); }

  $("admin-tab").addEventListener("click", function () {
    $("chat").hidden = true; $("admin").hidden = false;
    $("admin-tab").classList.add("tab--active"); $("desk-tab").classList.remove("tab--active");
    load();
  });
  $("agent-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const v = values(event.target);
    const teams = (v.teams || "").split(",").map(function (t) { return t.trim(); }).filter(Boolean);
    try {
      await call("POST", "/agents", { username: v.username, name: v.name, password: v.password, role: v.role, capacity: Number(v.capacity), teams: teams });
      event.target.reset(); load();
    } catch (e) { showError(e.message); }
  });
  $("team-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const form = event.target; const v = values(form);
    const hours = form.elements.always.checked ? null : {
      tz: v.tz, start: v.start, end: v.end,
      days: v.days.split(",").map(function (d) { return Number(d.trim()); }).filter(function (d) { return d >= 0 && d <= 6; }),
    };
    try { await call("POST", "/teams", { name: v.name, title: v.title, hours: hours, is_default: form.elements.is_default.checked }); form.reset(); load(); }
    catch (e) { showError(e.message); }
  });
  $("canned-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const v = values(event.target);
    try { await call("POST", "/canned", { shortcut: v.shortcut, title: v.title, body: v.body, team: v.team || null }); event.target.reset(); load(); }
    catch (e) { showError(e.message); }
  });
})();
