// The widget's own words, by locale (data-locale, else the browser's language). Texts from the relay (bot and
// agent messages, queue wait) arrive already written and are shown as they are.
const STRINGS = {
  en: {
    open: "Open chat", close: "Close chat", unread: (n) => n + " unread", placeholder: "Type your question…",
    send: "Send", message: "Your message", online: "Online", offline: "Reconnecting…", you: "You",
    assistant: "Assistant", agent: "Agent", botTyping: "Assistant is typing…", agentTyping: (who) => who + " is typing…",
    seen: "Seen", next: "You're next", position: (n) => "You're number " + n + " in the queue",
    wait: (t) => " · a person will join " + t, closed: "Our team is closed right now.",
    nobody: "No one is online right now.", email: "Your email", leaveEmail: "Leave my email",
    comment: "Anything to add? (optional)", rate: (s) => "Rate " + s + " of 5", thanks: "Thanks for your feedback!",
    greeting: "Hi! Ask us anything.", refused: "Chat is not available on this page.",
    unreachable: "Can't reach the chat right now; retrying…", newMessage: (who) => "New message from " + who,
    end: "End chat", rateChat: "How would you rate this chat?",
  },
  de: {
    open: "Chat öffnen", close: "Chat schließen", unread: (n) => n + " ungelesen", placeholder: "Ihre Frage…",
    send: "Senden", message: "Ihre Nachricht", online: "Online", offline: "Verbinde neu…", you: "Sie",
    assistant: "Assistent", agent: "Mitarbeiter", botTyping: "Der Assistent schreibt…",
    agentTyping: (who) => who + " schreibt…", seen: "Gelesen", next: "Sie sind als Nächstes dran",
    position: (n) => "Sie sind Nummer " + n + " in der Warteschlange", wait: (t) => " · jemand kommt " + t,
    closed: "Unser Team ist gerade nicht im Dienst.", nobody: "Gerade ist niemand online.", email: "Ihre E-Mail",
    leaveEmail: "E-Mail hinterlassen", comment: "Möchten Sie etwas ergänzen? (optional)",
    rate: (s) => "Mit " + s + " von 5 bewerten", thanks: "Danke für Ihre Bewertung!",
    greeting: "Hallo! Fragen Sie uns einfach.", refused: "Der Chat ist auf dieser Seite nicht verfügbar.",
    unreachable: "Der Chat ist gerade nicht erreichbar; neuer Versuch…", newMessage: (who) => "Neue Nachricht von " + who,
    end: "Chat beenden", rateChat: "Wie bewerten Sie diesen Chat?",
  },
};

export function strings(locale) {
  const lang = String(locale || "en").toLowerCase().split(/[-_]/)[0];
  return STRINGS[lang] || STRINGS.en;
}

export function localeOf(wanted) {
  const lang = String(wanted || navigator.language || "en").toLowerCase().split(/[-_]/)[0];
  return STRINGS[lang] ? lang : "en";
}
