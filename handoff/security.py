"""The security headers every response carries. The pages load scripts only from the relay itself (no inline
script anywhere: the Content Security Policy forbids it); the console pages may not be framed by another site;
the widget's script is meant to be loaded by other sites, so it says nothing about framing."""

from __future__ import annotations

# Styles may be inline: the widget builds its own stylesheet inside its shadow root, and pages set a few style
# attributes; scripts may not.
PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https:",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
        "form-action 'self'",
    )
)
API_POLICY = "default-src 'none'; frame-ancestors 'none'"

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def headers_for(path: str, content_type: str | None) -> dict[str, str]:
    if path.startswith("/widget/"):
        return dict(COMMON)  # a script for other sites' pages
    policy = PAGE_POLICY if (content_type or "").startswith("text/html") else API_POLICY
    return {**COMMON, "Content-Security-Policy": policy, "X-Frame-Options": "DENY"}
