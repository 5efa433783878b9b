"""The KB's errors: part of the relay's error tree (``handoff.errors``), so the editor API answers them like any
other REST error; the message is safe to show an editor."""

from __future__ import annotations

from handoff.errors import Conflict, NotFound, RelayError

__all__ = ["Conflict", "ImportFailed", "InvalidArticle", "KBError", "NotFound"]


class KBError(RelayError):
    status = 400
    code = "invalid"


class InvalidArticle(KBError):
    code = "invalid_article"


class ImportFailed(KBError):
    """A bad import file; the message names the row. Nothing was changed."""

    code = "import_failed"
