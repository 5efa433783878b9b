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
  let sessionId = localStorage.getItem(SESSION_KEY);

  const socket = io({ transports: ["websocket", "polling"] });

  function setOnline(online) {
    statusBadge.textContent = online ? "Online" : "Reconnecting…";
    statusBadge.className = "status " + (online ? "status--online" : "status--offline");
    sendButton.disabled = !online;
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  function newClientId() {
    return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2));
  }

  function label(sender) {
    return { customer: "You", bot: "Assistant", agent: "Agent", system: "" }[sender] || sender;
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
    if (message.sender !== "customer" && label(message.sender)) {
      const who = document.createElement("span");
      who.className = "msg__who";
      who.textContent = message.agent_name || label(message.sender);
      item.appendChild(who);
    }
    const body = document.createElement("span");
    body.className = "msg__text";
    body.textContent = message.text || "";
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
        if (ack.message_id != null) shown.add("id:" + ack.message_id);
        showError("");
      }
    });
  }

  socket.on("connect", function () {
    setOnline(true);
    socket.emit("session_request", { session_id: sessionId, customData: { page: location.href } });
  });
  socket.on("disconnect", function () { setOnline(false); });
  socket.on("session_confirm", function (id) {
    sessionId = typeof id === "string" ? id : id && id.session_id;
    localStorage.setItem(SESSION_KEY, sessionId);
  });
  socket.on("history", function (history) {
    history.messages.forEach(function (m) { render(m); });
  });
  socket.on("bot_uttered", function (message) {
    render(Object.assign({ sender: "bot" }, message));
  });
  socket.on("relay_error", function (error) { showError(error.message); });
  socket.on("rating_request", function (request) { showRating(request); });

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
    input.value = "";
    input.focus();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });
  setOnline(false);
})();
