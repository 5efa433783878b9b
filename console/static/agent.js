// Agent page: log in, see the queue, accept a chat, read the handoff card and transcript, reply, resolve.
// Every piece of text from customers, the bot or the card is inserted with textContent: nothing runs as HTML.
(function () {
  "use strict";
  const TOKEN_KEY = "warmline.agent_token";
  const $ = function (id) { return document.getElementById(id); };
  const state = { token: sessionStorage.getItem(TOKEN_KEY), chats: new Map(), queue: new Map(), current: null, shown: new Set() };
  let socket = null;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function showError(id, text) { $(id).textContent = text || ""; $(id).hidden = !text; }

  function chime() {
    // A short tone when a chat arrives, so an agent on another tab notices (no audio file needed).
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      const osc = ctx.createOscillator(); osc.frequency.value = 880; osc.connect(ctx.destination);
      osc.start(); osc.stop(ctx.currentTime + 0.15);
    } catch (e) { /* sound is a courtesy */ }
  }

  async function login(event) {
    event.preventDefault();
    showError("login-error", "");
    const response = await fetch("/api/agent/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    const body = await response.json();
    if (!response.ok) { showError("login-error", body.error ? body.error.message : "Login failed"); return; }
    state.token = body.token;
    sessionStorage.setItem(TOKEN_KEY, body.token);
    connect();
  }

  function connect() {
    $("login").hidden = true; $("desk").hidden = false;
    socket = io("/agent", { auth: { token: state.token }, transports: ["websocket", "polling"] });
    socket.on("connect", function () { $("conn").textContent = "online"; socket.emit("sync", {}, onSync); });
    socket.on("disconnect", function () { $("conn").textContent = "reconnecting…"; });
    socket.on("connect_error", function (err) {
      if (err && err.data && err.data.code === "bad_token") {
        sessionStorage.removeItem(TOKEN_KEY); socket.disconnect();
        $("login").hidden = false; $("desk").hidden = true;
        showError("login-error", err.data.message);
      }
    });
    socket.on("ticket_waiting", function (ticket) { state.queue.set(ticket.ticket_id, ticket); renderQueue(); chime(); });
    socket.on("ticket_taken", function (ref) { state.queue.delete(ref.ticket_id); renderQueue(); });
    socket.on("chat_message", function (event) {
      const chat = state.chats.get(event.ticket_id);
      if (!chat) return;
      chat.messages.push(event.message);
      if (state.current === event.ticket_id) renderMessage(event.message);
    });
    socket.on("ticket_resolved", function (ref) { state.chats.delete(ref.ticket_id); if (state.current === ref.ticket_id) closeChat(); renderChats(); });
    socket.on("relay_error", function (error) { showError("chat-error", error.message); });
  }

  function onSync(reply) {
    if (!reply || !reply.ok) return;
    $("me").textContent = reply.agent.name;
    state.queue = new Map(reply.queue.map(function (t) { return [t.ticket_id, t]; }));
    state.chats = new Map(reply.chats.map(function (c) { return [c.ticket.ticket_id, c]; }));
    renderQueue(); renderChats();
    if (state.current && state.chats.has(state.current)) openChat(state.current);
  }

  function customerLabel(ticket) {
    const c = ticket.customer || {};
    return c.name || c.email || "Customer " + ticket.conversation_id.slice(0, 6);
  }

  function renderQueue() {
    const list = $("queue"); list.replaceChildren();
    state.queue.forEach(function (ticket) {
      const item = el("li"); item.dataset.ticketId = ticket.ticket_id;
      item.appendChild(el("strong", null, customerLabel(ticket)));
      item.appendChild(el("small", null, ticket.reason_text || ticket.reason));
      const accept = el("button", "accept", "Accept");
      accept.type = "button";
      accept.addEventListener("click", function () {
        socket.emit("accept", { ticket_id: ticket.ticket_id }, function (ack) {
          if (!ack.ok) { showError("chat-error", ack.error.message); return; }
          state.queue.delete(ticket.ticket_id);
          state.chats.set(ticket.ticket_id, ack.ticket);
          renderQueue(); renderChats(); openChat(ticket.ticket_id);
        });
      });
      item.appendChild(accept);
      list.appendChild(item);
    });
    $("queue-count").textContent = String(state.queue.size);
    document.title = (state.queue.size ? "(" + state.queue.size + ") " : "") + "Warmline agent";
  }

  function renderChats() {
    const list = $("chats"); list.replaceChildren();
    state.chats.forEach(function (chat, id) {
      const item = el("li", state.current === id ? "active" : null);
      item.dataset.ticketId = id;
      item.appendChild(el("strong", null, customerLabel(chat.ticket)));
      item.appendChild(el("small", null, chat.ticket.reason_text || chat.ticket.reason));
      item.addEventListener("click", function () { openChat(id); });
      list.appendChild(item);
    });
  }

  function renderMessage(message) {
    const key = "id:" + message.message_id;
    if (state.shown.has(key)) return;
    state.shown.add(key);
    const item = el("li", "msg msg--" + message.sender);
    const who = { customer: "Customer", bot: "Bot", agent: message.agent_name || "Agent", system: "" }[message.sender];
    if (who) item.appendChild(el("span", "msg__who", who));
    item.appendChild(el("span", "msg__text", message.text));
    $("transcript").appendChild(item);
    $("transcript").scrollTop = $("transcript").scrollHeight;
  }

  function renderCard(card, ticket) {
    const box = $("card"); box.replaceChildren();
    box.appendChild(el("h3", null, "Why it came to you"));
    box.appendChild(el("p", "reason", card.reason_text || card.reason));
    const customer = card.customer || ticket.customer || {};
    box.appendChild(el("h3", null, "Customer"));
    const who = el("dl");
    Object.keys(customer).forEach(function (k) { who.appendChild(el("dt", null, k)); who.appendChild(el("dd", null, String(customer[k]))); });
    box.appendChild(who);
    box.appendChild(el("h3", null, "What the bot understood"));
    const turns = el("ol", "intents");
    (card.transcript || []).filter(function (t) { return t.sender === "customer"; }).forEach(function (turn) {
      const li = el("li");
      li.appendChild(el("q", null, turn.text));
      const top = (turn.intents || []).map(function (i) { return i.name + " " + Math.round(i.confidence * 100) + "%"; }).join(", ");
      li.appendChild(el("div", "top-intents", top));
      if (turn.entities && turn.entities.length) li.appendChild(el("div", null, "entities: " + turn.entities.map(function (e) { return e.entity + "=" + e.value; }).join(", ")));
      turns.appendChild(li);
    });
    box.appendChild(turns);
    if (card.failed_turns && card.failed_turns.length) {
      box.appendChild(el("h3", null, "Questions the bot could not answer"));
      const failed = el("ul");
      card.failed_turns.forEach(function (t) { failed.appendChild(el("li", null, t)); });
      box.appendChild(failed);
    }
    const slots = card.slots || {};
    if (Object.keys(slots).length) {
      box.appendChild(el("h3", null, "Slots"));
      const dl = el("dl");
      Object.keys(slots).forEach(function (k) { dl.appendChild(el("dt", null, k)); dl.appendChild(el("dd", null, JSON.stringify(slots[k]))); });
      box.appendChild(dl);
    }
  }

  function openChat(id) {
    const chat = state.chats.get(id);
    if (!chat) return;
    state.current = id; state.shown = new Set();
    $("chat").hidden = false;
    $("chat-title").textContent = customerLabel(chat.ticket);
    $("transcript").replaceChildren();
    chat.messages.forEach(renderMessage);
    renderCard(chat.card, chat.ticket);
    renderChats();
  }

  function closeChat() { state.current = null; $("chat").hidden = true; }

  $("login-form").addEventListener("submit", login);
  $("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    const text = $("reply").value.trim();
    if (!text || !state.current) return;
    const clientId = crypto.randomUUID ? crypto.randomUUID() : String(Date.now());
    socket.emit("agent_message", { ticket_id: state.current, text: text, client_id: clientId }, function (ack) {
      if (!ack.ok) { showError("chat-error", ack.error.message); return; }
      showError("chat-error", "");
    });
    $("reply").value = "";
  });
  $("reply").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("composer").requestSubmit(); }
  });
  $("resolve").addEventListener("click", function () {
    const id = state.current;
    socket.emit("resolve", { ticket_id: id }, function (ack) {
      if (!ack.ok) { showError("chat-error", ack.error.message); return; }
      state.chats.delete(id); closeChat(); renderChats();
    });
  });
  if (state.token) connect();
})();
