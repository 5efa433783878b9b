"""Verified customer identity and allowed origins (handoff/identity.py, handoff/origins.py): plain functions, and
the customer record an agent sees, over a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.db import create_engine, session_factory
from handoff import identity, origins, store
from handoff.console import customer_record
from handoff.models import Conversation
from warmline.migrate import upgrade

SECRET = "s3cret-shared-with-the-site"


def test_a_valid_signature_makes_a_verified_customer() -> None:
    claimed = {"user_id": "u-1", "user_hash": identity.sign(SECRET, "u-1"), "name": "Maya", "email": "m@example.com"}
    assert identity.resolve(claimed, SECRET, required=False) == {
        "user_id": "u-1", "name": "Maya", "email": "m@example.com", "verified": True,
    }  # fmt: skip


@pytest.mark.parametrize("required", [False, True])
def test_a_wrong_signature_is_refused(required: bool) -> None:
    for bad in (identity.sign(SECRET, "u-2"), "00" * 32, "not hex"):
        with pytest.raises(identity.IdentityInvalid):
            identity.resolve({"user_id": "u-1", "user_hash": bad}, SECRET, required)
    with pytest.raises(identity.IdentityInvalid):  # a signature with no id to check it against
        identity.resolve({"user_hash": identity.sign(SECRET, "u-1")}, SECRET, required)


def test_no_signature_is_a_claim_or_refused_when_required() -> None:
    claim = {"user_id": "u-1", "name": "Maya", "email": "m@example.com"}
    assert identity.resolve(claim, SECRET, required=False) == {
        "name": "Maya",
        "email": "m@example.com",
        "verified": False,
    }
    assert identity.resolve(None, SECRET, required=False) is None
    with pytest.raises(identity.IdentityRequired):
        identity.resolve(claim, SECRET, required=True)
    with pytest.raises(identity.IdentityRequired):
        identity.resolve(None, SECRET, required=True)
    # A relay with no secret cannot verify anything: the id is dropped, never trusted.
    signed = {"user_id": "u-1", "user_hash": identity.sign(SECRET, "u-1"), "name": "Maya"}
    assert identity.resolve(signed, None, required=False) == {"name": "Maya", "verified": False}


def test_a_claim_never_overwrites_a_verified_record_and_a_verified_chat_is_only_its_users() -> None:
    verified = {"user_id": "u-1", "name": "Maya", "verified": True}
    assert identity.merge(verified, {"name": "Mallory", "page": "/x", "verified": False}) == {**verified, "page": "/x"}
    upgraded = identity.merge({"name": "M", "verified": False}, verified)
    assert upgraded["verified"] is True and upgraded["user_id"] == "u-1"
    assert identity.same_person(verified, {"user_id": "u-1", "verified": True})
    assert not identity.same_person(verified, {"user_id": "u-2", "verified": True})
    assert not identity.same_person(verified, {"name": "Maya", "verified": False}) and not identity.same_person(
        verified, None
    )
    assert identity.same_person({"name": "x", "verified": False}, None)


def test_allowed_origins() -> None:
    listed = origins.parse_origins("https://www.example.com/, https://Shop.example.com")
    assert origins.allowed("https://www.example.com", "chat.example.com", listed)
    assert origins.allowed("https://shop.example.com", "chat.example.com", listed)
    assert not origins.allowed("https://evil.example", "chat.example.com", listed)
    assert origins.allowed("https://chat.example.com", "chat.example.com", listed)  # the relay's own pages
    assert origins.allowed(None, "chat.example.com", frozenset())  # not a browser: credentials decide
    assert origins.allowed("https://any.example", "chat.example.com", origins.parse_origins("*"))


async def test_only_a_verified_customer_has_a_past(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'record.db'}"
    upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    maya = {"user_id": "u-1", "name": "Maya", "email": "maya@example.com", "verified": True}
    async with sessions() as s, s.begin():
        await s.run_sync(store.open_conversation, "conv-old-01", maya)
        await s.run_sync(store.open_conversation, "conv-new-01", maya)
        # Someone else types Maya's email: a claim, which must not be shown Maya's past.
        await s.run_sync(
            store.open_conversation, "conv-fake-1", {"name": "Maya", "email": "maya@example.com", "verified": False}
        )
    async with sessions() as s:
        new, fake = await s.get(Conversation, "conv-new-01"), await s.get(Conversation, "conv-fake-1")
        assert new is not None and fake is not None
        real = await customer_record(s, new)
        claimed = await customer_record(s, fake)
    assert real.verified and {c["id"] for c in real.conversations} == {"conv-old-01", "conv-new-01"}
    assert not claimed.verified and [c["id"] for c in claimed.conversations] == ["conv-fake-1"]
    await engine.dispose()
