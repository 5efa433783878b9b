// KB answers are Markdown. A small subset becomes DOM nodes: **bold**, *italic*, `code`, [links](https://…) and
// bare https:// links. Nothing is ever parsed as HTML: every piece of text goes in as a text node.
const INLINE = /(\*\*[^*\n]+\*\*|\*[^*\n]+\*|`[^`\n]+`|\[[^\]\n]+\]\([^)\s]+\)|https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/;

function safeHref(url) {
  try {
    const parsed = new URL(url, location.href);
    return ["http:", "https:", "mailto:"].indexOf(parsed.protocol) >= 0 ? parsed.href : null;
  } catch (e) {
    return null;
  }
}

function link(text, href) {
  const a = document.createElement("a");
  a.textContent = text;
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

export function appendMarkdown(parent, text) {
  String(text || "").split(INLINE).forEach(function (part) {
    if (!part) return;
    let node = null;
    if (/^\*\*[^*\n]+\*\*$/.test(part)) {
      node = document.createElement("strong");
      node.textContent = part.slice(2, -2);
    } else if (/^\*[^*\n]+\*$/.test(part)) {
      node = document.createElement("em");
      node.textContent = part.slice(1, -1);
    } else if (/^`[^`\n]+`$/.test(part)) {
      node = document.createElement("code");
      node.textContent = part.slice(1, -1);
    } else if (/^\[[^\]\n]+\]\([^)\s]+\)$/.test(part)) {
      const close = part.indexOf("](");
      const href = safeHref(part.slice(close + 2, -1));
      node = href ? link(part.slice(1, close), href) : document.createTextNode(part.slice(1, close));
    } else if (/^https?:\/\//.test(part)) {
      const href = safeHref(part);
      node = href ? link(part, href) : document.createTextNode(part);
    } else {
      node = document.createTextNode(part);
    }
    parent.appendChild(node);
  });
}

export { safeHref };
