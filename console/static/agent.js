// Agent console: log in, set presence, see the team queue (offers, sound, badge), accept, read the handoff card,
// the customer's record and the transcript, reply (canned responses with "/", KB answers), typing and read
// receipts, transfer with a note, resolve. Every piece of text from customers, the bot, other agents or the card
// is inserted with textContent: nothing runs as HTML.
(function () {
  "use strict";
  const TOKEN_KEY = "warmline.agent_token";
  const ROLE_KEY = "warmline.agent_role";
  const TYPING_EVERY_MS = 2000; // at most one "typing" event per 2 s; the relay drops faster ones anyway
  const TYPING_IDLE_MS = 3000; // no keystroke for this long means "stopped typing"
  const TYPING_SHOWN_MS = 6000; // hide the indicator if the "stopped" event was lost
  const ui = window.warmlineUI;
  const $ = ui.$, el = ui.el, showError = ui.show;
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY), me: null, chats: new Map(), queue: new Map(), current: null,
    // ticket id -> the "joined" message id of its last ticket_taken: a queue event read before it is stale (it came
    // from another task or relay process after the take; TicketSummary.as_of_message_id in handoff/events.py).
    takenAt: new Map(),
    shown: new Set(), unread: new Map(), directory: null,
    // The copilot: suggestion sets per ticket, by the customer message they belong to; the last insert.
    suggestions: new Map(), inserted: null,
  };
  const typing = { sentAt: 0, idle: null, hide: null };
  let socket = null;
  window.warmline = { state: state, socket: function () { return socket; } }; // for admin.js and debugging

  function staleQueueEvent(ticket) {
    return (ticket.as_of_message_id || 0) < (state.takenAt.get(ticket.ticket_id) || 0);
  }

  function chime() {
    // A short tone when a chat arrives, so an agent on another tab notices (no audio file needed).
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      const osc = ctx.createOscillator(); osc.frequency.value = 880; osc.connect(ctx.destination);
      osc.start(); osc.stop(ctx.currentTime + 0.15);
    } catch (e) { /* sound is a courtesy */ }
    document.body.dataset.chimes = String(Number(document.body.dataset.chimes || 0) + 1);
  }

  function emit(event, payload) {
    return new Promise(function (resolve) { socket.emit(event, payload, function (ack) { resolve(ack || { ok: false }); }); });
  }

  async function login(event) {
    event.preventDefault();
    showError("login-error", "");
    const reply = await ui.login($("username").value, $("password").value);
    if (!reply.ok) { showError("login-error", reply.message); return; }
    state.token = reply.token;
    sessionStorage.setItem(TOKEN_KEY, reply.token);
    sessionStorage.setItem(ROLE_KEY, reply.agent.role);
    connect();
  }

  function logout() {
    sessionStorage.removeItem(TOKEN_KEY); sessionStorage.removeItem(ROLE_KEY);
    if (socket) socket.disconnect();
    location.reload();
  }

  function connect() {
    $("login").hidden = true; $("desk").hidden = false;
    $("admin-tab").hidden = sessionStorage.getItem(ROLE_KEY) !== "admin";
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
    socket.on("ticket_waiting", function (ticket) {
      if (staleQueueEvent(ticket)) return;
      state.queue.set(ticket.ticket_id, ticket); renderQueue(); chime();
    });
    socket.on("ticket_offered", function (ticket) {
      if (staleQueueEvent(ticket)) return;
      const known = state.queue.get(ticket.ticket_id) || {};
      state.queue.set(ticket.ticket_id, Object.assign(known, ticket, { offered_to: state.me && state.me.id }));
      renderQueue(); chime();
    });
    socket.on("ticket_taken", function (ref) {
      state.takenAt.set(ref.ticket_id, Math.max(state.takenAt.get(ref.ticket_id) || 0, ref.as_of_message_id || 0));
      state.queue.delete(ref.ticket_id); renderQueue();
    });
    socket.on("chat_message", onChatMessage);
    socket.on("suggestions", addSuggestions);
    socket.on("ticket_resolved", function (ref) { dropChat(ref.ticket_id); });
    socket.on("ticket_transferred", function (out) {
      // Received by everyone in the chat's room: the sender (and their other tabs) drop it; the receiver re-syncs.
      const chat = state.chats.get(out.ticket_id);
      if (chat && state.me && out.to_agent_id !== state.me.id) dropChat(out.ticket_id);
    });
    socket.on("chat_assigned", function () { chime(); socket.emit("sync", {}, onSync); });
    socket.on("typing", onTyping);
    socket.on("read", onRead);
    socket.on("relay_error", function (error) {
      // Typing and read receipts are best effort (a chat can move on mid-keystroke): no alarm for those.
      if (error.event === "typing" || error.event === "read") return;
      showError("chat-error", error.message);
    });
  }

  function onSync(reply) {
    if (!reply || !reply.ok) return;
    state.me = reply.agent;
    $("me").textContent = reply.agent.name;
    $("presence").value = reply.agent.presence;
    $("my-teams").textContent = "Teams: " + reply.agent.teams.join(", ");
    $("admin-tab").hidden = reply.agent.role !== "admin";
    const before = new Set(state.chats.keys());
    state.queue = new Map(reply.queue.filter(function (t) { return !staleQueueEvent(t); })
      .map(function (t) { return [t.ticket_id, t]; }));
    state.chats = new Map(reply.chats.map(function (c) { return [c.ticket.ticket_id, c]; }));
    renderQueue(); renderChats();
    state.chats.forEach(function (_, id) { loadSuggestions(id); });
    if (state.current && state.chats.has(state.current)) openChat(state.current);
    else if (!state.current) {
      const arrived = reply.chats.find(function (c) { return !before.has(c.ticket.ticket_id); });
      if (arrived && before.size === 0 && reply.chats.length === 1) openChat(arrived.ticket.ticket_id);
    }
  }

  function customerLabel(ticket) {
    const c = ticket.customer || {};
    const name = c.name || c.email || "Customer " + ticket.conversation_id.slice(0, 6);
    // Only a signed-in customer whose site vouched for them (docs/widget.md) is who they say they are.
    return (c.name || c.email) && !c.verified ? name + " (unverified)" : name;
  }

  function renderQueue() {
    const list = $("queue"); list.replaceChildren();
    state.queue.forEach(function (ticket) {
      const mine = state.me && ticket.offered_to === state.me.id;
      const item = el("li", mine ? "offered" : null); item.dataset.ticketId = ticket.ticket_id;
      item.appendChild(el("strong", null, customerLabel(ticket)));
      item.appendChild(el("small", null, (ticket.team ? ticket.team + " · " : "") + (ticket.reason_text || ticket.reason)));
      if (mine) item.appendChild(el("small", "offer", "Offered to you"));
      const accept = el("button", "accept", "Accept");
      accept.type = "button";
      accept.addEventListener("click", async function () {
        const ack = await emit("accept", { ticket_id: ticket.ticket_id });
        if (!ack.ok) { showError("chat-error", ack.error.message); return; }
        state.queue.delete(ticket.ticket_id);
        state.chats.set(ticket.ticket_id, ack.ticket);
        renderQueue(); renderChats(); openChat(ticket.ticket_id);
      });
      item.appendChild(accept);
      list.appendChild(item);
    });
    $("queue-count").textContent = String(state.queue.size);
    document.title = (state.queue.size ? "(" + state.queue.size + ") " : "") + "Warmline console";
  }

  function renderChats() {
    const list = $("chats"); list.replaceChildren();
    state.chats.forEach(function (chat, id) {
      const item = el("li", state.current === id ? "active" : null);
      item.dataset.ticketId = id;
      item.appendChild(el("strong", null, customerLabel(chat.ticket)));
      item.appendChild(el("small", null, chat.ticket.reason_text || chat.ticket.reason));
      const unread = state.unread.get(id) || 0;
      if (unread) item.appendChild(el("span", "badge unread", String(unread)));
      item.addEventListener("click", function () { openChat(id); });
      list.appendChild(item);
    });
  }

  function dropChat(id) {
    state.chats.delete(id); state.unread.delete(id);
    if (state.current === id) closeChat();
    renderChats();
  }

  function onChatMessage(event) {
    const chat = state.chats.get(event.ticket_id);
    if (!chat) return;
    // After a reconnect a message can come both live and in the transcript of the sync (the relay joins the
    // chat's room before it reads the transcript, so that none falls between): keep one per message id.
    if (chat.messages.some(function (m) { return m.message_id === event.message.message_id; })) return;
    chat.messages.push(event.message);
    if (state.current === event.ticket_id) {
      renderMessage(event.message); markRead();
      if (event.message.sender === "customer") askSuggestions(event.ticket_id, event.message.message_id);
    } else if (event.message.sender === "customer") {
      state.unread.set(event.ticket_id, (state.unread.get(event.ticket_id) || 0) + 1); renderChats(); chime();
    }
    if (event.message.sender === "customer" && state.current === event.ticket_id) $("typing").hidden = true;
  }

  function onTyping(event) {
    if (event.sender !== "customer" || event.ticket_id !== state.current) return;
    $("typing").hidden = !event.typing;
    clearTimeout(typing.hide);
    if (event.typing) typing.hide = setTimeout(function () { $("typing").hidden = true; }, TYPING_SHOWN_MS);
  }

  function onRead(event) {
    const chat = state.chats.get(event.ticket_id);
    if (!chat || event.reader !== "customer") return;
    chat.ticket.customer_read_id = Math.max(chat.ticket.customer_read_id || 0, event.message_id);
    if (state.current === event.ticket_id) renderSeen();
  }

  function renderSeen() {
    // The customer has seen our messages up to customer_read_id: mark the agent messages at or before it.
    const chat = state.chats.get(state.current);
    const upTo = (chat && chat.ticket.customer_read_id) || 0;
    $("transcript").querySelectorAll(".msg--agent").forEach(function (item) {
      const seen = Number(item.dataset.messageId) <= upTo;
      let mark = item.querySelector(".msg__seen");
      if (seen && !mark) { mark = el("span", "msg__seen", "Seen"); item.appendChild(mark); }
    });
  }

  function markRead() {
    // Tell the customer we've seen everything on screen (only while this tab is visible).
    const chat = state.chats.get(state.current);
    if (!chat || document.visibilityState !== "visible" || !chat.messages.length) return;
    const last = chat.messages[chat.messages.length - 1].message_id;
    if (last > (chat.readSent || 0) && last > (chat.ticket.agent_read_id || 0)) {
      chat.readSent = last;
      socket.emit("read", { ticket_id: state.current, message_id: last });
    }
  }

  function renderMessage(message) {
    const key = "id:" + message.message_id;
    if (state.shown.has(key)) return;
    state.shown.add(key);
    const item = el("li", "msg msg--" + message.sender);
    item.dataset.messageId = message.message_id;
    const who = { customer: "Customer", bot: "Bot", agent: message.agent_name || "Agent", system: "",
      note: "Note from " + (message.agent_name || "an agent") + " (not shown to the customer)" }[message.sender];
    if (who) item.appendChild(el("span", "msg__who", who));
    item.appendChild(el("span", "msg__text", message.text));
    $("transcript").appendChild(item);
    if (message.sender === "agent") item.appendChild(saveButton(message));
    if (message.sender === "customer") {
      const sets = (state.suggestions.get(state.current) || new Map()).get(message.message_id) || [];
      sets.forEach(function (set) { renderSuggestions(set, item); });
    }
    $("transcript").scrollTop = $("transcript").scrollHeight;
  }

  // ------------------------------------------------------------------ the copilot: suggestions, insert, save
  // Suggestions come only to this agent (never the customer), for the chat on screen: the console asks for each
  // customer message as it arrives there and for the last unanswered question when the chat opens (only what an
  // agent looks at is ranked); with a handoff they come unasked. Each set stays under its message; one click
  // inserts (counted), and "Save to KB" sends an answer to editors.
  function setsOf(ticketId) {
    if (!state.suggestions.has(ticketId)) state.suggestions.set(ticketId, new Map());
    return state.suggestions.get(ticketId);
  }

  function addSuggestions(set, quiet) {
    const sets = setsOf(set.ticket_id);
    const list = sets.get(set.message_id) || [];
    if (list.some(function (s) { return s.suggestion_id === set.suggestion_id; })) return;
    list.push(set); sets.set(set.message_id, list);
    if (quiet || state.current !== set.ticket_id) return;  // rendered when the chat opens
    const anchor = $("transcript").querySelector('.msg--customer[data-message-id="' + set.message_id + '"]');
    if (anchor) renderSuggestions(set, anchor);
  }

  async function askSuggestions(ticketId, messageId) {
    const ask = { ticket_id: ticketId };
    if (messageId) ask.message_id = messageId;
    const ack = await emit("suggest", ask);
    if (ack.ok && ack.suggestions) addSuggestions(ack.suggestions);
  }

  async function loadSuggestions(ticketId) {
    const ack = await emit("suggestions_of", { ticket_id: ticketId });
    if (!ack.ok) return;
    ack.suggestions.forEach(function (set) { addSuggestions(set, true); });
    if (state.current === ticketId) openChat(ticketId);
  }

  function renderSuggestions(set, anchor) {
    if (!set.articles.length && !set.canned.length) return;
    const id = "suggest-" + set.suggestion_id;
    if (document.getElementById(id)) return;
    const box = el("li", "suggest"); box.id = id; box.dataset.messageId = set.message_id;
    box.setAttribute("aria-label", "Suggestions for this message (only you see them)");
    box.appendChild(el("span", "suggest__head", set.context === "handoff" ? "Suggested for the customer's question" : "Suggested"));
    set.articles.forEach(function (a) {
      const row = el("div", "suggest__item suggest__item--" + a.level);
      row.dataset.articleId = a.article_id;
      const title = el("strong", null, a.title);
      row.appendChild(title);
      row.appendChild(el("span", "suggest__conf", Math.round(a.confidence * 100) + "% · " + a.level));
      row.appendChild(el("p", "suggest__excerpt", a.excerpt));
      row.appendChild(insertButton(set, "article", a.article_id, "Insert answer"));
      box.appendChild(row);
    });
    set.canned.forEach(function (c) {
      const row = el("div", "suggest__item suggest__item--canned");
      row.dataset.cannedId = String(c.canned_id);
      row.appendChild(el("strong", null, "/" + c.shortcut + " " + c.title));
      row.appendChild(el("p", "suggest__excerpt", c.text));
      row.appendChild(insertButton(set, "canned", String(c.canned_id), "Insert"));
      box.appendChild(row);
    });
    // After the message, and after any set already shown for it.
    let after = anchor;
    while (after.nextElementSibling && after.nextElementSibling.classList.contains("suggest")) after = after.nextElementSibling;
    after.after(box);
  }

  function insertButton(set, kind, ref, label) {
    const button = el("button", "suggest__insert secondary", label); button.type = "button";
    button.addEventListener("click", async function () {
      const ack = await emit("suggestion_used", { ticket_id: set.ticket_id, suggestion_id: set.suggestion_id, kind: kind, ref: ref });
      if (!ack.ok) { showError("chat-error", ack.error.message); return; }
      const reply = $("reply");
      reply.value = reply.value.trim() ? reply.value.replace(/\s*$/, "\n\n") + ack.text : ack.text;
      state.inserted = { ticket_id: set.ticket_id, use_id: ack.use_id };
      reply.focus();
    });
    return button;
  }

  function suggestedArticles(ticketId) {
    const seen = new Map();
    setsOf(ticketId).forEach(function (list) {
      list.forEach(function (set) { set.articles.forEach(function (a) { seen.set(a.article_id, a.title); }); });
    });
    return seen;
  }

  function saveButton(message) {
    const wrap = el("span", "msg__save");
    const open = el("button", "save-kb", "Save to KB"); open.type = "button";
    open.addEventListener("click", function () {
      if (wrap.querySelector("form")) return;
      const form = el("form", "save-kb__form");
      const where = el("select", "save-kb__where"); where.setAttribute("aria-label", "Where to save this answer");
      const draft = el("option", null, "New draft article"); draft.value = "draft"; where.appendChild(draft);
      suggestedArticles(state.current).forEach(function (title, articleId) {
        const option = el("option", null, "Question of: " + title); option.value = "article:" + articleId;
        where.appendChild(option);
      });
      const go = el("button", null, "Save"); go.type = "submit";
      form.append(where, go);
      form.addEventListener("submit", async function (event) {
        event.preventDefault();
        const payload = { ticket_id: state.current, message_id: message.message_id, mode: "draft" };
        if (where.value.startsWith("article:")) { payload.mode = "examples"; payload.article_id = where.value.slice(8); }
        const ack = await emit("save_to_kb", payload);
        if (!ack.ok) { showError("chat-error", ack.error.message); return; }
        form.replaceWith(el("small", "save-kb__done", (ack.saved.mode === "draft" ? "Draft article " : "New question on ") +
          ack.saved.article_id + " is in the editors' inbox"));
      });
      wrap.appendChild(form);
    });
    wrap.appendChild(open);
    return wrap;
  }

  function renderCard(card, ticket) {
    const box = $("card"); box.replaceChildren();
    box.appendChild(el("h3", null, "Why it came to you"));
    box.appendChild(el("p", "reason", card.reason_text || card.reason));
    if (ticket.team) box.appendChild(el("p", "team", "Team: " + ticket.team));
    const customer = card.customer || ticket.customer || {};
    box.appendChild(el("h3", null, "Customer"));
    const who = el("dl");
    Object.keys(Object.assign({}, customer, ticket.customer || {})).forEach(function (k) {
      const value = (ticket.customer || {})[k] || customer[k];
      who.appendChild(el("dt", null, k)); who.appendChild(el("dd", null, String(value)));
    });
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
      const failed = el("ul", "failed");
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

  async function loadRecord(id) {
    const box = $("record"); box.replaceChildren(el("small", null, "Loading…"));
    const ack = await emit("customer_record", { ticket_id: id });
    if (state.current !== id) return;
    box.replaceChildren();
    if (!ack.ok) { box.appendChild(el("small", null, ack.error.message)); return; }
    const record = ack.record;
    box.appendChild(el("p", record.verified ? "verified" : "unverified", record.verified
      ? "Signed in on the site (verified): their past chats are below."
      : "Not verified: name and email are what the page said; no past chats are joined."));
    box.appendChild(el("p", null, record.conversations.length + " conversation(s), " + record.tickets.length + " ticket(s)"));
    const list = el("ul", "record");
    record.tickets.forEach(function (t) {
      const line = "#" + t.ticket_id + " · " + t.status + " · " + t.reason + (t.team ? " · " + t.team : "") +
        (t.agents.length ? " · " + t.agents.join(" → ") : "") + (t.rating ? " · rated " + t.rating + "/5" : "") +
        " · " + t.created_at.slice(0, 16).replace("T", " ");
      list.appendChild(el("li", t.ticket_id === id ? "current" : null, line));
    });
    box.appendChild(list);
    if (record.conversations.length > 1) {
      box.appendChild(el("h3", null, "Conversations"));
      const past = el("ul", "record");
      record.conversations.forEach(function (c) {
        past.appendChild(el("li", null, c.created_at.slice(0, 16).replace("T", " ") + " · " + c.status + " · " + c.id.slice(0, 8)));
      });
      box.appendChild(past);
    }
  }

  function openChat(id) {
    const chat = state.chats.get(id);
    if (!chat) return;
    const switching = state.current !== id;
    state.current = id; state.shown = new Set(); state.unread.delete(id);
    $("chat").hidden = false; $("admin").hidden = true;
    $("chat-title").textContent = customerLabel(chat.ticket);
    $("transcript").replaceChildren();
    if (switching) $("typing").hidden = true;
    chat.messages.forEach(renderMessage);
    renderSeen();
    renderCard(chat.card, chat.ticket);
    renderChats();
    if (switching) { loadRecord(id); askSuggestions(id); }
    markRead();
  }

  function closeChat() { state.current = null; $("chat").hidden = true; $("typing").hidden = true; }

  // ------------------------------------------------------------------ composer: send, typing, canned responses
  function sendTyping(isTyping) {
    if (!state.current) return;
    socket.emit("typing", { ticket_id: state.current, typing: isTyping });
  }

  function onComposerInput() {
    const now = Date.now();
    if (now - typing.sentAt > TYPING_EVERY_MS) { typing.sentAt = now; sendTyping(true); }
    clearTimeout(typing.idle);
    typing.idle = setTimeout(function () { typing.sentAt = 0; sendTyping(false); }, TYPING_IDLE_MS);
    const text = $("reply").value;
    if (text.startsWith("/") && !text.includes(" ")) showCanned(text.slice(1)); else hideCanned();
  }

  async function showCanned(query) {
    const ack = await emit("canned", { ticket_id: state.current, query: query });
    const list = $("canned-list"); list.replaceChildren();
    if (!ack.ok || !ack.items.length || !$("reply").value.startsWith("/")) { list.hidden = true; return; }
    ack.items.forEach(function (item) {
      const li = el("li"); const pick = el("button", "canned__pick"); pick.type = "button";
      pick.appendChild(el("strong", null, "/" + item.shortcut + " "));
      pick.appendChild(el("span", null, item.title));
      pick.appendChild(el("small", null, item.text));
      pick.addEventListener("click", function () { $("reply").value = item.text; hideCanned(); $("reply").focus(); });
      li.appendChild(pick); list.appendChild(li);
    });
    list.hidden = false;
  }

  function hideCanned() { $("canned-list").hidden = true; $("canned-list").replaceChildren(); }

  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    const text = $("reply").value.trim();
    if (!text || !state.current) return;
    const clientId = ui.newClientId();
    const inserted = state.inserted && state.inserted.ticket_id === state.current ? state.inserted : null;
    state.inserted = null;
    socket.emit("agent_message", { ticket_id: state.current, text: text, client_id: clientId }, function (ack) {
      if (!ack.ok) { showError("chat-error", ack.error.message); return; }
      showError("chat-error", "");
      // Our own message comes back in the ack, not as a chat_message (the relay sends that to our other tabs only).
      onChatMessage({ ticket_id: ack.ticket_id, message: ack.message });
      // The copilot's metrics: was the inserted suggestion sent as it was, or edited first (the relay compares).
      if (inserted) socket.emit("suggestion_sent", { ticket_id: inserted.ticket_id, use_id: inserted.use_id, message_id: ack.message_id });
    });
    clearTimeout(typing.idle); typing.sentAt = 0; // the relay tells the customer we stopped typing
    $("reply").value = ""; hideCanned();
  });
  $("reply").addEventListener("input", onComposerInput);
  $("reply").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      const first = $("canned-list").hidden ? null : $("canned-list").querySelector("button");
      if (first) { first.click(); return; }
      $("composer").requestSubmit();
    }
    if (event.key === "Escape") hideCanned();
  });
  $("resolve").addEventListener("click", async function () {
    const id = state.current;
    const ack = await emit("resolve", { ticket_id: id });
    if (!ack.ok) { showError("chat-error", ack.error.message); return; }
    dropChat(id);
  });

  // ------------------------------------------------------------------ KB search: one click inserts the answer
  $("kb-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const query = $("kb-query").value.trim();
    if (!query) return;
    const ack = await emit("kb_search", { query: query });
    const list = $("kb-results"); list.replaceChildren();
    if (!ack.ok) { list.appendChild(el("li", null, ack.error.message)); return; }
    if (!ack.hits.length) list.appendChild(el("li", null, "No article matches."));
    ack.hits.forEach(function (hit) {
      const li = el("li");
      li.appendChild(el("strong", null, hit.title));
      li.appendChild(el("p", "kb-answer", hit.answer));
      const insert = el("button", "kb-insert secondary", "Insert answer"); insert.type = "button";
      insert.addEventListener("click", function () {
        const reply = $("reply");
        reply.value = reply.value ? reply.value.replace(/\s*$/, "\n\n") + hit.answer : hit.answer;
        reply.focus();
      });
      li.appendChild(insert); list.appendChild(li);
    });
  });

  // ------------------------------------------------------------------ transfer with a required note
  $("transfer").addEventListener("click", async function () {
    const ack = await emit("directory", {});
    if (!ack.ok) { showError("chat-error", ack.error.message); return; }
    const select = $("transfer-target"); select.replaceChildren();
    const agents = el("optgroup"); agents.label = "Agents";
    ack.agents.filter(function (a) { return !state.me || a.id !== state.me.id; }).forEach(function (a) {
      const option = el("option", null, a.name + " (" + a.presence + ", " + a.active + "/" + a.capacity + ")");
      option.value = "agent:" + a.id; agents.appendChild(option);
    });
    const teams = el("optgroup"); teams.label = "Teams";
    ack.teams.forEach(function (t) {
      const option = el("option", null, t.title + " team"); option.value = "team:" + t.name; teams.appendChild(option);
    });
    select.appendChild(agents); select.appendChild(teams);
    $("transfer-note").value = "";
    $("transfer-dialog").showModal();
  });
  $("transfer-cancel").addEventListener("click", function () { $("transfer-dialog").close(); });
  $("transfer-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const target = $("transfer-target").value; const note = $("transfer-note").value.trim();
    if (!target || !note) return;
    const id = state.current;
    const payload = { ticket_id: id, note: note };
    if (target.startsWith("agent:")) payload.to_agent_id = Number(target.slice(6)); else payload.to_team = target.slice(5);
    const ack = await emit("transfer", payload);
    $("transfer-dialog").close();
    if (!ack.ok) { showError("chat-error", ack.error.message); return; }
    dropChat(id);
  });

  $("presence").addEventListener("change", async function () {
    const ack = await emit("presence", { presence: $("presence").value });
    if (!ack.ok) showError("chat-error", ack.error.message);
  });
  document.addEventListener("visibilitychange", markRead);
  $("desk-tab").addEventListener("click", function () {
    $("admin").hidden = true; $("desk-tab").classList.add("tab--active"); $("admin-tab").classList.remove("tab--active");
    if (state.current) $("chat").hidden = false;
  });
  if (state.token) connect();
})();
