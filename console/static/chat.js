// Customer chat page. Speaks Rasa's socketio protocol to the Warmline relay (same origin).
// All message text is inserted with textContent: nothing a customer, bot or agent writes is ever run as HTML.
(function () {
  "use strict";
  const SESSION_KEY = "warmline.session_id";
  const list = document.getElementById("messages");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const sendButton = document.getElementById("send");
  const statusBadge = document.getElementById("status");
  const errorBox = document.getElementById("error");
  const shown = new Set(); // message ids already on screen, so history and live events never show one twice
  const queueStatus = document.getElementById("queue-status");
  const typingLine = document.getElementById("typing");
  const TYPING_EVERY_MS = 2000; // at most one "typing" event per 2 s; the relay drops faster ones anyway
  const TYPING_IDLE_MS = 3000; // no keystroke for this long means "stopped typing"
  const TYPING_SHOWN_MS = 6000; // hide the indicator if the "stopped" event was lost
  const human = { on: false, lastSeen: 0, readSent: 0, agentRead: 0, typingAt: 0, idle: null, hide: null };
  let sessionId = localStorage.getItem(SESSION_KEY);

  const socket = io({ transports: ["websocket", "polling"] });

  function setOnline(online) {
    statusBadge.textContent = online ? "Online" : "Reconnecting…";
    statusBadge.className = "status " + (online ? "status--online" : "status--offline");
    sendButton.disabled = !online;
  }

  function showError(text) { window.warmlineUI.show(errorBox.id, text); }
  const newClientId = window.warmlineUI.newClientId;

  function label(sender) {
    return { customer: "You", bot: "Assistant", agent: "Agent", system: "" }[sender] || sender;
  }

  // KB answers are Markdown; **bold** becomes <strong>, built from DOM nodes so no text is ever parsed as HTML.
  function appendEmphasis(parent, text) {
    text.split(/(\*\*[^*\n]+\*\*)/).forEach(function (part) {
      if (/^\*\*[^*\n]+\*\*$/.test(part)) {
        const strong = document.createElement("strong");
        strong.textContent = part.slice(2, -2);
        parent.appendChild(strong);
      } else if (part) {
        parent.appendChild(document.createTextNode(part));
      }
    });
  }

  function render(message, options) {
    const key = message.message_id != null ? "id:" + message.message_id : null;
    if (key && shown.has(key)) return null;
    if (key) shown.add(key);
    if (message.client_id) {
      const pending = list.querySelector('[data-client-id="' + CSS.escape(message.client_id) + '"]');
      if (pending) { pending.classList.remove("msg--pending"); return pending; }
    }
    const item = document.createElement("li");
    item.className = "msg msg--" + message.sender + (options && options.pending ? " msg--pending" : "");
    if (message.client_id) item.dataset.clientId = message.client_id;
    if (message.message_id != null) {
      item.dataset.messageId = message.message_id;
      human.lastSeen = Math.max(human.lastSeen, message.message_id);
    }
    if (message.sender !== "customer" && message.sender !== "system") { // "X joined" already names X
      const who = document.createElement("span");
      who.className = "msg__who";
      who.textContent = message.agent_name || label(message.sender);
      item.appendChild(who);
    }
    const body = document.createElement("span");
    body.className = "msg__text";
    appendEmphasis(body, message.text || "");
    item.appendChild(body);
    if (Array.isArray(message.quick_replies) && message.quick_replies.length) {
      const replies = document.createElement("div");
      replies.className = "replies";
      message.quick_replies.forEach(function (reply) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = reply.title;
        button.addEventListener("click", function () { send(reply.payload, reply.title); });
        replies.appendChild(button);
      });
      item.appendChild(replies);
    }
    list.appendChild(item);
    list.scrollTop = list.scrollHeight;
    return item;
  }

  function send(text, shownText) {
    const clientId = newClientId();
    render({ sender: "customer", text: shownText || text, client_id: clientId }, { pending: true });
    socket.emit("user_uttered", { message: text, session_id: sessionId, client_id: clientId,
      customData: { page: location.href } }, function (ack) {
      if (ack && ack.ok) {
        const item = list.querySelector('[data-client-id="' + CSS.escape(clientId) + '"]');
        if (item) item.classList.remove("msg--pending");
        if (ack.message_id != null) {
          shown.add("id:" + ack.message_id);
          if (item) item.dataset.messageId = ack.message_id;
        }
        showError("");
      }
    });
  }

  socket.on("connect", function () {
    // "Online" (and the Send button) only once the session is confirmed: the relay handles events concurrently,
    // so a message sent before that could arrive ahead of session_request.
    socket.emit("session_request", { session_id: sessionId, customData: { page: location.href } });
  });
  socket.on("disconnect", function () { setOnline(false); });
  socket.on("session_confirm", function (id) {
    sessionId = typeof id === "string" ? id : id && id.session_id;
    localStorage.setItem(SESSION_KEY, sessionId);
    setOnline(true);
  });
  socket.on("history", function (history) {
    history.messages.forEach(function (m) { render(m); });
    human.on = history.status === "queued" || history.status === "agent";
    human.agentRead = history.agent_read_id || 0;
    renderSeen(); markRead();
  });
  socket.on("bot_uttered", function (message) {
    render(Object.assign({ sender: "bot" }, message));
    if (message.sender === "agent" || message.agent_name) { human.on = true; queueStatus.hidden = true; }
    if (message.sender === "agent") typingLine.hidden = true;
    markRead();
  });
  socket.on("relay_error", function (error) {
    if (error.event === "typing" || error.event === "read") return; // best effort, never an alarm
    showError(error.message);
  });
  socket.on("rating_request", function (request) { human.on = false; typingLine.hidden = true; showRating(request); });
  socket.on("queue_position", function (status) {
    // Live: where the customer stands and roughly how long it will take (or that no one can come right now).
    human.on = true;
    let text;
    if (status.availability === "open") {
      text = (status.position === 1 ? "You're next" : "You're number " + status.position + " in the queue") +
        (status.wait_text ? " · a person will join " + status.wait_text : "");
    } else {
      text = status.availability === "closed" ? "Our team is closed right now." : "No one is online right now.";
    }
    queueStatus.textContent = text;
    queueStatus.hidden = false;
  });
  socket.on("email_request", function (request) { showEmailForm(request); });
  socket.on("typing", function (event) {
    if (event.sender !== "agent") return;
    typingLine.textContent = (event.name || "The agent") + " is typing…";
    typingLine.hidden = !event.typing;
    clearTimeout(human.hide);
    if (event.typing) human.hide = setTimeout(function () { typingLine.hidden = true; }, TYPING_SHOWN_MS);
  });
  socket.on("read", function (event) {
    if (event.reader !== "agent") return;
    human.agentRead = Math.max(human.agentRead, event.message_id);
    renderSeen();
  });

  function renderSeen() {
    // The agent has seen our messages up to agentRead: mark them, once.
    list.querySelectorAll(".msg--customer[data-message-id]").forEach(function (item) {
      if (Number(item.dataset.messageId) <= human.agentRead && !item.querySelector(".msg__seen")) {
        const mark = document.createElement("span");
        mark.className = "msg__seen"; mark.textContent = "Seen";
        item.appendChild(mark);
      }
    });
  }

  function markRead() {
    // Read receipts only matter while a person is involved, and only for what is on a visible screen.
    if (!human.on || document.visibilityState !== "visible" || human.lastSeen <= human.readSent) return;
    human.readSent = human.lastSeen;
    socket.emit("read", { message_id: human.lastSeen });
  }
  document.addEventListener("visibilitychange", markRead);

  function sendTyping(isTyping) { if (human.on) socket.emit("typing", { typing: isTyping }); }

  function showEmailForm(request) {
    const item = document.createElement("li");
    item.className = "msg msg--system email";
    const form = document.createElement("form");
    form.className = "email-form";
    const input = document.createElement("input");
    input.type = "email"; input.required = true; input.maxLength = 320; input.placeholder = "you@example.com";
    input.setAttribute("aria-label", "Your email");
    const button = document.createElement("button");
    button.type = "submit"; button.textContent = "Leave my email";
    form.appendChild(input); form.appendChild(button);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      socket.emit("leave_email", { email: input.value }, function (ack) {
        if (ack && ack.ok) item.remove(); else if (ack && ack.error) showError(ack.error.message);
      });
    });
    item.appendChild(form);
    list.appendChild(item);
    list.scrollTop = list.scrollHeight;
  }

  function showRating(request) {
    const item = document.createElement("li");
    item.className = "msg msg--system rating";
    const question = document.createElement("span");
    question.textContent = request.question;
    item.appendChild(question);
    const stars = document.createElement("div");
    stars.className = "replies";
    const comment = document.createElement("input");
    comment.type = "text"; comment.maxLength = 2000; comment.placeholder = "Anything to add? (optional)";
    comment.className = "rating__comment";
    request.scale.forEach(function (score) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = String(score);
      button.setAttribute("aria-label", "Rate " + score + " of 5");
      button.addEventListener("click", function () {
        socket.emit("rating", { ticket_id: request.ticket_id, score: score, comment: comment.value || null }, function (ack) {
          if (ack && ack.ok) { item.replaceChildren(document.createTextNode("Thanks for your feedback!")); }
        });
      });
      stars.appendChild(button);
    });
    item.appendChild(stars);
    item.appendChild(comment);
    list.appendChild(item);
    list.scrollTop = list.scrollHeight;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    send(text);
    clearTimeout(human.idle); human.typingAt = 0; // the relay tells the agent we stopped typing
    input.value = "";
    input.focus();
  });
  input.addEventListener("input", function () {
    const now = Date.now();
    if (now - human.typingAt > TYPING_EVERY_MS) { human.typingAt = now; sendTyping(true); }
    clearTimeout(human.idle);
    human.idle = setTimeout(function () { human.typingAt = 0; sendTyping(false); }, TYPING_IDLE_MS);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });
  setOnline(false);
})();
