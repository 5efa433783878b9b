// Helpers shared by the relay's own pages (agent console, admin tab, KB editor), loaded before each page's script.
// One global, warmlineUI; nothing here touches the page until a page calls it. Text always goes in as textContent.
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  // A message box (error or notice) by id: shown with the text, hidden when the text is empty.
  function show(id, text) { $(id).textContent = text || ""; $(id).hidden = !text; }

  function newClientId() {
    return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2);
  }

  // The server's error shape is {error: {code, message}}; anything else gets the fallback text.
  function errorMessage(data, fallback) { return data && data.error ? data.error.message : fallback; }

  // One fetch for every REST call: bearer token when given, JSON both ways; JSON or text back by content type.
  async function request(method, url, options) {
    const opts = options || {};
    const headers = {};
    if (opts.token) headers.Authorization = "Bearer " + opts.token;
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method: method, headers: headers, body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    });
    const isJson = (response.headers.get("content-type") || "").indexOf("application/json") === 0;
    const data = isJson ? await response.json() : await response.text();
    return { ok: response.ok, status: response.status, data: data };
  }

  // The agent login every page uses: {ok, token, agent} or {ok: false, message}.
  async function login(username, password) {
    const reply = await request("POST", "/api/agent/login", { body: { username: username, password: password } });
    if (!reply.ok) return { ok: false, message: errorMessage(reply.data, "Login failed") };
    return { ok: true, token: reply.data.token, agent: reply.data.agent };
  }

  window.warmlineUI = { $: $, el: el, show: show, newClientId: newClientId, errorMessage: errorMessage,
    request: request, login: login };
})();
