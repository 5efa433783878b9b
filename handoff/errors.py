"""One error tree for the relay: each error carries a stable code and a message safe to show the client."""

from __future__ import annotations


class RelayError(Exception):
    code = "internal"
    message = "Something went wrong on our side; your conversation is safe, please try again."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message:
            self.message = message

    def payload(self, **extra: object) -> dict[str, object]:
        return {"code": self.code, "message": self.message, **extra}


class InvalidPayload(RelayError):
    code = "invalid_payload"


class MessageTooLong(RelayError):
    code = "message_too_long"


class NoSession(RelayError):
    code = "no_session"
    message = "No chat session on this connection: send session_request first."


class WrongSession(RelayError):
    # Deliberately the same wording whether the session exists or not: it must not reveal other conversations.
    code = "wrong_session"
    message = "This connection may only send to its own chat session."


class BotUnavailable(RelayError):
    code = "bot_unavailable"
    message = "The assistant is not reachable right now. Your message is saved; please try again in a moment."


class TicketUnavailable(RelayError):
    code = "ticket_unavailable"
    message = "This chat was already taken by another agent, or it is closed."


class NotYourTicket(RelayError):
    code = "not_your_ticket"
    message = "This chat is not assigned to you."


class InvalidRating(RelayError):
    code = "invalid_rating"
    message = "That rating could not be stored: rate a closed chat of your own from 1 to 5."
