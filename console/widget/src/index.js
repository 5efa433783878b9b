// Warmline's embeddable chat widget: one <script> tag on any site. It speaks Rasa's socketio protocol to the relay
// (bot_uttered in Rasa's shapes, Warmline's extras under metadata) plus Warmline's human-phase events. Everything
// lives in an open shadow root (the host page's CSS does not reach in), socket.io-client is bundled (no global is
// read; one flag is written so a doubled snippet starts once), and every text goes in as text nodes: nothing
// anyone writes ever runs as HTML.
import { io } from "socket.io-client";
import { appendMarkdown, safeHref } from "./markdown.js";
import { localeOf, strings } from "./strings.js";
import css from "./style.css";

const KEYS = { session: "warmline.session_id", open: "warmline.open", unread: "warmline.unread", user: "warmline.user_id" };
const TYPING_EVERY_MS = 2000; // at most one "typing" event per 2 s; the relay drops faster ones anyway
const TYPING_IDLE_MS = 3000; // no keystroke for this long means "stopped typing"
const TYPING_SHOWN_MS = 6000; // hide an indicator whose "stopped" event was lost
const BOT_THINKING_MS = 15000; // "Assistant is typing" gives up if no reply comes

function store(key, value) {
  try {
    if (value == null) localStorage.removeItem(key);
    else localStorage.setItem(key, String(value));
  } catch (e) { /* storage can be off (private mode): the chat still works for this page */ }
}

function load(key) {
  try { return localStorage.getItem(key); } catch (e) { return null; }
}

function readConfig(script) {
  const data = (script && script.dataset) || {};
  const src = script && script.src ? new URL(script.src, location.href) : null;
  const color = data.color && CSS.supports("color", data.color) ? data.color : "#1f4fd1";
  const identity = {};
  if (data.userId) identity.user_id = data.userId;
  if (data.userName) identity.name = data.userName;
  if (data.userEmail) identity.email = data.userEmail;
  if (data.userHash) identity.user_hash = data.userHash;
  return {
    relay: (data.relay || (src ? src.origin : location.origin)).replace(/\/+$/, ""),
    title: data.title || "Support",
    color: color,
    position: data.position === "left" ? "left" : "right",
    greeting: data.greeting,
    locale: localeOf(data.locale),
    identity: identity,
  };
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function newClientId() {
  return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2);
}

const ICON = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z";

function mount(config) {
  const t = strings(config.locale);
  // A custom element name, so a host page's rules for div, section, ... never match the widget's host.
  const host = document.createElement("warmline-widget");
  host.id = "warmline-widget";
  host.setAttribute("data-warmline", "");
  const shadow = host.attachShadow({ mode: "open" });
  const style = document.createElement("style");
  style.textContent = css;
  const root = el("div", "root root--" + config.position);
  root.lang = config.locale;
  root.style.setProperty("--wl-color", config.color);

  const launcher = el("button", "launcher");
  launcher.type = "button";
  launcher.id = "launcher";
  launcher.setAttribute("aria-controls", "panel");
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(svgNS, "path");
  path.setAttribute("d", ICON);
  svg.appendChild(path);
  const badge = el("span", "badge");
  badge.id = "badge";
  badge.hidden = true;
  badge.setAttribute("aria-hidden", "true");
  launcher.append(svg, badge);

  const panel = el("section", "panel");
  panel.id = "panel";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", config.title);
  const header = el("div", "header"); // not <header>: a second banner landmark on the host page
  const title = el("h2", null, config.title);
  const status = el("span", "status", t.offline);
  status.id = "status";
  const end = el("button", "end", t.end); // ends a chat with the bot: a bot-only chat is then asked for a rating
  end.type = "button";
  const close = el("button", "close", "×");
  close.type = "button";
  close.setAttribute("aria-label", t.close);
  header.append(title, status, end, close);
  const queueStatus = el("p", "queue-status");
  queueStatus.id = "queue-status";
  queueStatus.setAttribute("role", "status");
  queueStatus.hidden = true;
  const list = el("ol", "messages");
  list.id = "messages";
  list.setAttribute("aria-live", "polite"); // new messages are read out; the list keeps its list semantics
  list.setAttribute("aria-relevant", "additions");
  list.setAttribute("aria-label", config.title);
  list.tabIndex = 0; // a scrollable region must be reachable by keyboard
  const typingLine = el("p", "typing");
  typingLine.id = "typing";
  typingLine.setAttribute("role", "status");
  typingLine.hidden = true;
  const errorBox = el("p", "error");
  errorBox.id = "error";
  errorBox.setAttribute("role", "alert");
  errorBox.hidden = true;
  const form = el("form", "composer");
  form.id = "composer";
  form.setAttribute("autocomplete", "off");
  const inputLabel = el("label", "visually-hidden", t.message);
  inputLabel.htmlFor = "text";
  const input = el("textarea");
  input.id = "text";
  input.rows = 1;
  input.maxLength = 4000;
  input.placeholder = t.placeholder;
  const sendButton = el("button", null, t.send);
  sendButton.id = "send";
  sendButton.type = "submit";
  sendButton.disabled = true;
  form.append(inputLabel, input, sendButton);
  panel.append(header, queueStatus, list, typingLine, errorBox, form);
  root.append(panel, launcher);
  shadow.append(style, root);
  (document.body || document.documentElement).appendChild(host);
  return { t, host, root, launcher, badge, panel, status, end, close, queueStatus, list, typingLine, errorBox, form, input, sendButton };
}

function start(config) {
  const ui = mount(config);
  const t = ui.t;
  const shown = new Set(); // message ids already on screen, so history and live events never show one twice
  // seatedAt: the newest message id that shows a person is in the chat (an agent's message, their "joined"); a
  // queue status read before it is stale (QueueStatus.as_of_message_id in handoff/events.py).
  const human = { on: false, seatedAt: 0, lastSeen: 0, readSent: 0, agentRead: 0, typingAt: 0, idle: null, hide: null };
  const bot = { timer: null };
  let unread = Number(load(KEYS.unread)) || 0;
  let open = load(KEYS.open) === "1";
  let refused = false;

  // A different signed-in user on this browser starts a conversation of their own.
  const userId = config.identity.user_id || null;
  if ((load(KEYS.user) || null) !== userId) { store(KEYS.session, null); store(KEYS.user, userId); unread = 0; }
  let sessionId = load(KEYS.session);

  function customData() { return Object.assign({ page: location.href, locale: config.locale }, config.identity); }

  function showError(text) { ui.errorBox.textContent = text || ""; ui.errorBox.hidden = !text; }

  function setOnline(online) {
    ui.status.textContent = online ? t.online : t.offline;
    ui.sendButton.disabled = !online;
  }

  function renderBadge() {
    ui.badge.textContent = String(unread);
    ui.badge.hidden = open || !unread;
    ui.launcher.setAttribute("aria-label", unread && !open ? t.open + " (" + t.unread(unread) + ")" : t.open);
  }

  function setOpen(value, focus) {
    open = value;
    store(KEYS.open, open ? "1" : "0");
    ui.panel.hidden = !open;
    ui.root.classList.toggle("root--open", open);
    ui.launcher.setAttribute("aria-expanded", String(open));
    if (open) { unread = 0; store(KEYS.unread, 0); markRead(); scrollDown(); }
    renderBadge();
    if (focus) (open ? ui.input : ui.launcher).focus();
  }

  function scrollDown() { ui.list.scrollTop = ui.list.scrollHeight; }

  function label(sender) {
    return { customer: t.you, bot: t.assistant, agent: t.agent, system: "" }[sender] || sender;
  }

  function botThinking(on) {
    clearTimeout(bot.timer);
    if (on && !human.on) {
      ui.typingLine.textContent = t.botTyping;
      ui.typingLine.hidden = false;
      bot.timer = setTimeout(function () { ui.typingLine.hidden = true; }, BOT_THINKING_MS);
    } else if (!on && ui.typingLine.textContent === t.botTyping) {
      ui.typingLine.hidden = true;
    }
  }

  function buttons(items, className) {
    const box = el("div", className);
    items.forEach(function (reply) {
      if (!reply || !reply.title) return;
      const button = el("button", null, reply.title);
      button.type = "button";
      button.addEventListener("click", function () {
        if (reply.url && safeHref(reply.url)) { window.open(safeHref(reply.url), "_blank", "noopener"); return; }
        send(reply.payload || reply.title, reply.title);
      });
      box.appendChild(button);
    });
    return box;
  }

  // A message in any of Rasa's socketio shapes: text, text + quick_replies (or buttons), an image attachment,
  // generic-template elements, or a custom payload (shown only if it carries text). Extras come under metadata.
  function render(message, options) {
    const key = message.message_id != null ? "id:" + message.message_id : null;
    if (key && shown.has(key)) return null;
    if (key) shown.add(key);
    if (message.client_id) {
      const pending = ui.list.querySelector('[data-client-id="' + CSS.escape(message.client_id) + '"]');
      if (pending) { pending.classList.remove("msg--pending"); return pending; }
    }
    const item = el("li", "msg msg--" + message.sender + (options && options.pending ? " msg--pending" : ""));
    if (message.client_id) item.dataset.clientId = message.client_id;
    if (message.message_id != null) {
      item.dataset.messageId = message.message_id;
      human.lastSeen = Math.max(human.lastSeen, message.message_id);
    }
    if (message.sender !== "customer" && message.sender !== "system") { // "X joined" already names X
      item.appendChild(el("span", "msg__who", message.agent_name || label(message.sender)));
    }
    if (message.text) {
      const body = el("span", "msg__text");
      appendMarkdown(body, message.text);
      item.appendChild(body);
    }
    const attachment = message.attachment;
    if (attachment && attachment.type === "image" && attachment.payload && safeHref(attachment.payload.src)) {
      const image = document.createElement("img");
      image.src = safeHref(attachment.payload.src);
      image.alt = attachment.payload.title || attachment.payload.alt || "";
      item.appendChild(image);
    }
    if (Array.isArray(message.elements) && message.elements.length) {
      const cards = el("div", "cards");
      message.elements.forEach(function (element) {
        const card = el("div", "card");
        if (element.image_url && safeHref(element.image_url)) {
          const image = document.createElement("img");
          image.src = safeHref(element.image_url);
          image.alt = element.title || "";
          card.appendChild(image);
        }
        if (element.title) card.appendChild(el("strong", null, element.title));
        if (element.subtitle) card.appendChild(el("span", null, element.subtitle));
        if (Array.isArray(element.buttons)) card.appendChild(buttons(element.buttons, "replies"));
        cards.appendChild(card);
      });
      item.appendChild(cards);
    }
    const replies = message.quick_replies || message.buttons;
    if (Array.isArray(replies) && replies.length) item.appendChild(buttons(replies, "replies"));
    if (item.childElementCount === (item.querySelector(".msg__who") ? 1 : 0)) return null; // nothing we can show
    ui.list.appendChild(item);
    scrollDown();
    return item;
  }

  function incoming(message) {
    // A new message from the bot, an agent or the system while the panel is closed counts as unread.
    if (!open) { unread += 1; store(KEYS.unread, unread); renderBadge(); }
  }

  function send(text, shownText) {
    const clientId = newClientId();
    render({ sender: "customer", text: shownText || text, client_id: clientId }, { pending: true });
    botThinking(true);
    socket.emit("user_uttered", { message: text, session_id: sessionId, client_id: clientId, customData: customData() },
      function (ack) {
        const item = ui.list.querySelector('[data-client-id="' + CSS.escape(clientId) + '"]');
        if (ack && ack.ok) {
          if (item) item.classList.remove("msg--pending");
          if (ack.message_id != null) {
            shown.add("id:" + ack.message_id);
            if (item) item.dataset.messageId = ack.message_id;
          }
          showError("");
        } else if (ack && ack.error) {
          botThinking(false);
          showError(ack.error.message);
        }
      });
  }

  function renderSeen() {
    // The agent has seen our messages up to agentRead: mark them, once.
    ui.list.querySelectorAll(".msg--customer[data-message-id]").forEach(function (item) {
      if (Number(item.dataset.messageId) <= human.agentRead && !item.querySelector(".msg__seen")) {
        item.appendChild(el("span", "msg__seen", t.seen));
      }
    });
  }

  function markRead() {
    // Read receipts matter only while a person is involved, and only for what is on a visible, open panel.
    if (!human.on || !open || document.visibilityState !== "visible" || human.lastSeen <= human.readSent) return;
    human.readSent = human.lastSeen;
    socket.emit("read", { message_id: human.lastSeen });
  }

  function sendTyping(isTyping) { if (human.on) socket.emit("typing", { typing: isTyping }); }

  function showEmailForm() {
    const item = el("li", "msg msg--system email");
    const emailForm = el("form", "email-form");
    const field = el("input");
    field.type = "email"; field.required = true; field.maxLength = 320; field.placeholder = "you@example.com";
    field.setAttribute("aria-label", t.email);
    if (config.identity.email) field.value = config.identity.email;
    const button = el("button", null, t.leaveEmail);
    button.type = "submit";
    emailForm.append(field, button);
    emailForm.addEventListener("submit", function (event) {
      event.preventDefault();
      socket.emit("leave_email", { email: field.value }, function (ack) {
        if (ack && ack.ok) item.remove(); else if (ack && ack.error) showError(ack.error.message);
      });
    });
    item.appendChild(emailForm);
    ui.list.appendChild(item);
    scrollDown();
  }

  function showRating(request) {
    const item = el("li", "msg msg--system rating");
    // A ticket's rating names the ticket; a bot-only chat's (scope "chat", after end_chat or a quiet spell) does not.
    const chat = request.scope === "chat";
    item.appendChild(el("span", null, chat ? t.rateChat : request.question));
    const stars = el("div", "replies");
    const comment = el("input");
    comment.type = "text"; comment.maxLength = 2000; comment.placeholder = t.comment;
    comment.setAttribute("aria-label", t.comment);
    request.scale.forEach(function (score) {
      const button = el("button", null, String(score));
      button.type = "button";
      button.setAttribute("aria-label", t.rate(score));
      button.addEventListener("click", function () {
        const done = function (ack) { if (ack && ack.ok) item.replaceChildren(document.createTextNode(t.thanks)); };
        if (chat) socket.emit("chat_rating", { score: score, comment: comment.value || null }, done);
        else socket.emit("rating", { ticket_id: request.ticket_id, score: score, comment: comment.value || null }, done);
      });
      stars.appendChild(button);
    });
    item.append(stars, comment);
    ui.list.appendChild(item);
    scrollDown();
  }

  // ------------------------------------------------------------------------------------------------ the socket
  const socket = io(config.relay, { transports: ["websocket", "polling"], tryAllTransports: true });

  socket.on("connect", function () {
    // Online (and the Send button) only once the session is confirmed: a message sent before that could arrive
    // ahead of session_request, since the relay handles events concurrently.
    socket.emit("session_request", { session_id: sessionId, customData: customData() });
  });
  socket.on("connect_error", function (error) {
    setOnline(false);
    const data = error && error.data;
    if (data && data.code) {
      // Refused by the relay (e.g. origin_not_allowed): it will not change by retrying, so say why once.
      if (!refused) console.error("Warmline: the relay at " + config.relay + " refused this page (" + location.origin +
        "): " + data.code + ": " + (data.message || ""));
      refused = true;
      showError(t.refused);
    } else if (!refused) {
      refused = true; // log once; socket.io keeps retrying on its own
      console.error("Warmline: cannot connect to the relay at " + config.relay + " (" + (error && error.message) +
        "). If the relay is up, check that this page's origin, " + location.origin + ", is in WARMLINE_ALLOWED_ORIGINS.");
      showError(t.unreachable);
    }
  });
  socket.on("disconnect", function () { setOnline(false); });
  socket.on("session_confirm", function (id) {
    sessionId = typeof id === "string" ? id : id && id.session_id;
    store(KEYS.session, sessionId);
    refused = false;
    showError("");
    setOnline(true);
  });
  socket.on("history", function (history) {
    history.messages.forEach(function (m) { render(m); });
    human.on = history.status === "queued" || history.status === "agent";
    if (history.status === "agent") human.seatedAt = Math.max(human.seatedAt, human.lastSeen);
    human.agentRead = history.agent_read_id || 0;
    renderSeen(); markRead();
  });
  socket.on("bot_uttered", function (payload) {
    const meta = (payload && payload.metadata) || {};
    const message = Object.assign({}, payload, {
      sender: meta.sender || "bot", message_id: meta.message_id, client_id: meta.client_id, agent_name: meta.agent_name,
    });
    const item = render(message);
    if (message.sender !== "system" || !human.on) botThinking(false);
    if (message.sender === "agent" || message.agent_name) {
      human.on = true;
      human.seatedAt = Math.max(human.seatedAt, message.message_id || 0);
      ui.queueStatus.hidden = true;
    }
    if (message.sender === "agent") ui.typingLine.hidden = true;
    if (item) incoming(message);
    markRead();
  });
  socket.on("relay_error", function (error) {
    if (error.event === "typing" || error.event === "read") return; // best effort, never an alarm
    if (error.code === "identity_invalid" || error.code === "identity_required") {
      console.error("Warmline: " + error.code + ": " + error.message + " (see the identity settings in docs/widget.md)");
    }
    botThinking(false);
    showError(error.message);
  });
  socket.on("rating_request", function (request) {
    human.on = false; ui.typingLine.hidden = true; showRating(request); incoming();
  });
  socket.on("queue_position", function (status) {
    // Live: where the customer stands and roughly how long it will take (or that no one can come right now).
    if ((status.as_of_message_id || 0) < human.seatedAt) return; // read before an agent joined, sent after
    human.on = true;
    botThinking(false);
    let text;
    if (status.availability === "open") {
      text = (status.position === 1 ? t.next : t.position(status.position)) + (status.wait_text ? t.wait(status.wait_text) : "");
    } else {
      text = status.availability === "closed" ? t.closed : t.nobody;
    }
    ui.queueStatus.textContent = text;
    ui.queueStatus.hidden = false;
  });
  socket.on("email_request", function () { showEmailForm(); });
  socket.on("typing", function (event) {
    if (event.sender !== "agent") return;
    ui.typingLine.textContent = t.agentTyping(event.name || t.agent);
    ui.typingLine.hidden = !event.typing;
    clearTimeout(human.hide);
    if (event.typing) human.hide = setTimeout(function () { ui.typingLine.hidden = true; }, TYPING_SHOWN_MS);
  });
  socket.on("read", function (event) {
    if (event.reader !== "agent") return;
    human.agentRead = Math.max(human.agentRead, event.message_id);
    renderSeen();
  });

  // ------------------------------------------------------------------------------------------------ the page
  ui.launcher.addEventListener("click", function () { setOpen(!open, true); });
  ui.close.addEventListener("click", function () { setOpen(false, true); });
  ui.end.addEventListener("click", function () { socket.emit("end_chat", {}); });
  ui.panel.addEventListener("keydown", function (event) { if (event.key === "Escape") setOpen(false, true); });
  document.addEventListener("visibilitychange", markRead);
  ui.form.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text || ui.sendButton.disabled) return;
    send(text);
    clearTimeout(human.idle); human.typingAt = 0; // the relay tells the agent we stopped typing
    ui.input.value = "";
    ui.input.focus();
  });
  ui.input.addEventListener("input", function () {
    const now = Date.now();
    if (now - human.typingAt > TYPING_EVERY_MS) { human.typingAt = now; sendTyping(true); }
    clearTimeout(human.idle);
    human.idle = setTimeout(function () { human.typingAt = 0; sendTyping(false); }, TYPING_IDLE_MS);
  });
  ui.input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); ui.form.requestSubmit(); }
  });
  const greeting = config.greeting != null ? config.greeting : t.greeting;
  if (greeting) { const item = el("li", "msg msg--bot msg--greeting"); appendMarkdown(item, greeting); ui.list.appendChild(item); }
  setOnline(false);
  setOpen(open, false);
}

// Once per page, even if the snippet is pasted twice.
const script = document.currentScript;
if (!window.__warmlineWidget) {
  window.__warmlineWidget = true;
  const config = readConfig(script);
  if (document.body) start(config);
  else document.addEventListener("DOMContentLoaded", function () { start(config); });
}
