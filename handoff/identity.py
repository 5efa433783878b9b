"""Who the customer is: a claim, or verified by the site's backend.

A site that knows its signed-in user passes ``user_id`` with ``user_hash`` = hex HMAC-SHA256 of the id under the
secret it shares with the relay (``WARMLINE_IDENTITY_SECRET``), as Intercom's identity verification and
Chatwoot's ``identifier_hash`` do. A verified customer's name and email are theirs and their past conversations
join by ``user_id``; anything else is only what the page claims: shown to agents as unverified and never joined to
anyone's history. Plain functions; the relay calls ``resolve`` for every ``customData`` it receives.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from common.errors import RelayError


class IdentityInvalid(RelayError):
    status = 403
    code = "identity_invalid"
    message = "This page's signature of the signed-in user is not valid; the chat cannot start as that user."


class IdentityRequired(RelayError):
    status = 403
    code = "identity_required"
    message = "This chat is for signed-in users: the page must pass the user's id and its signature."


def sign(secret: str, user_id: str) -> str:
    """What the site's backend computes (docs/widget.md shows it in a few languages)."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def resolve(claimed: dict[str, Any] | None, secret: str | None, required: bool) -> dict[str, Any] | None:
    """The customer record to store from what the page sent: verified (with ``user_id`` and ``verified: True``),
    or a claim (``verified: False``, no ``user_id``). None when the page sent nothing and nothing is required."""
    claimed = dict(claimed or {})
    user_id, user_hash = claimed.pop("user_id", None), claimed.pop("user_hash", None)
    if user_hash and secret:
        if not user_id or not hmac.compare_digest(sign(secret, str(user_id)), str(user_hash)):  # constant time
            raise IdentityInvalid()
        return {**claimed, "user_id": str(user_id), "verified": True}
    if required:  # no signature (or no secret to check one with): nobody is signed in
        raise IdentityRequired()
    return {**claimed, "verified": False} if claimed else None


def merge(known: dict[str, Any], new: dict[str, Any] | None) -> dict[str, Any]:
    """A verified record is never overwritten by a later claim; a verification upgrades a claimed one."""
    if not new:
        return known
    if known.get("verified") and not new.get("verified"):
        page = {"page": new["page"]} if new.get("page") else {}
        return {**known, **page}
    return {**known, **{k: v for k, v in new.items() if v not in (None, "")}}


def same_person(known: dict[str, Any], new: dict[str, Any] | None) -> bool:
    """May this page resume a chat that belongs to ``known``? A verified chat only for the same verified user."""
    if not known.get("verified"):
        return True
    return bool(new and new.get("verified") and new.get("user_id") == known.get("user_id"))
