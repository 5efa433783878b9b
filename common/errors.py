"""One error tree for the relay: each error carries a stable code, a message safe to show the client and the HTTP
status it has when a REST route raises it (``handoff.rest.on_error``); a socket handler sends it as ``relay_error``
(``handoff.guard``). The KB's errors (``knowledge.errors``) are part of this tree."""

from __future__ import annotations


class RelayError(Exception):
    status = 500
    code = "internal"
    message = "Something went wrong on our side; your conversation is safe, please try again."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message:
            self.message = message

    def payload(self, **extra: object) -> dict[str, object]:
        return {"code": self.code, "message": self.message, **extra}


class InvalidPayload(RelayError):
    status = 400
    code = "invalid_payload"


class Unauthorized(RelayError):
    status = 401
    code = "unauthorized"
    message = "Log in first: send Authorization: Bearer <token> from POST /api/agent/login."


class BadToken(RelayError):
    status = 401
    code = "bad_token"
    message = "Please log in again: this login is unknown or has expired."


class WrongLogin(RelayError):
    status = 401
    code = "bad_credentials"
    message = "Wrong username or password."


class Forbidden(RelayError):
    status = 403
    code = "forbidden"
    message = "Your role does not allow this."


class NotFound(RelayError):
    status = 404
    code = "not_found"
    message = "No such thing."


class Conflict(RelayError):
    status = 409
    code = "conflict"


class MessageTooLong(RelayError):
    status = 400
    code = "message_too_long"


class NoSession(RelayError):
    status = 400
    code = "no_session"
    message = "No chat session on this connection: send session_request first."


class WrongSession(RelayError):
    status = 403
    # Deliberately the same wording whether the session exists or not: it must not reveal other conversations.
    code = "wrong_session"
    message = "This connection may only send to its own chat session."


class BotUnavailable(RelayError):
    status = 503
    code = "bot_unavailable"
    message = "The assistant is not reachable right now. Your message is saved; please try again in a moment."


class TicketUnavailable(RelayError):
    status = 409
    code = "ticket_unavailable"
    message = "This chat was already taken by another agent, or it is closed."


class NotYourTicket(RelayError):
    status = 403
    code = "not_your_ticket"
    message = "This chat is not assigned to you."


class InvalidRating(RelayError):
    status = 400
    code = "invalid_rating"
    message = "That rating could not be stored: rate a closed chat of your own from 1 to 5."


# The knowledge base's errors: the editor API answers them like any other REST error.
class KBError(RelayError):
    status = 400
    code = "invalid"


class InvalidArticle(KBError):
    code = "invalid_article"


class ImportFailed(KBError):
    """A bad import file; the message names the row. Nothing was changed."""

    code = "import_failed"
