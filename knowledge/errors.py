"""The KB's error tree: each error carries an HTTP status and a stable code; the message is safe to show an editor."""

from __future__ import annotations


class KBError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def payload(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidArticle(KBError):
    code = "invalid_article"


class ImportFailed(KBError):
    """A bad import file; the message names the row. Nothing was changed."""

    code = "import_failed"


class NotFound(KBError):
    status = 404
    code = "not_found"


class Conflict(KBError):
    status = 409
    code = "conflict"


class Unauthorized(KBError):
    status = 401
    code = "unauthorized"


class Forbidden(KBError):
    status = 403
    code = "forbidden"
