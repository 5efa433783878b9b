"""Rasa's Redis lock store, with every change to a conversation's lock made atomically.

Rasa 3.6's ``RedisLockStore`` keeps a conversation's ticket queue as one JSON value and changes it by reading it,
changing it in the process and writing it back (``issue_ticket``, ``finish_serving``, ``update_lock``), then
deletes it if ``is_someone_waiting`` read no tickets a moment before (``cleanup``). Within one process the event
loop makes those steps atomic; across processes they race (RasaHQ/rasa#9213; the fix, ``ConcurrentRedisLockStore``
of rasa#11256, was reverted from Rasa Open Source). Seen in tests/test_scale_out_rasa.py with Redis' MONITOR: two
Rasa processes both read "no lock", both wrote a queue holding only their own ticket 0, and both took the lock; the
two turns ran from the same tracker, and ``SQLTrackerStore.save``, which stores "the events past the number already
stored", then dropped one turn or interleaved the two. A deletion racing a new ticket loses the ticket the same way.

Here each read-change-write of the lock key is one Redis transaction (WATCH / MULTI / EXEC, retried when another
process changed the key meanwhile), and cleanup removes the ticket and deletes the queue in the same transaction,
only if it is empty. The stored format is Rasa's, so processes on either class read each other's locks.
Enabled in ``deploy/endpoints.scaled.yml`` as ``lock_store: type: bot.lock_store.AtomicRedisLockStore``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

T = TypeVar("T")


class AtomicRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: EndpointConfig) -> None:
        # Rasa builds a lock store named by module path as ``cls(endpoint_config=...)``; the settings are those of
        # ``type: redis`` (url, port, db, password, key_prefix, ...).
        super().__init__(host=endpoint_config.url or "localhost", **endpoint_config.kwargs)

    def _change(self, conversation_id: str, change: Callable[[TicketLock | None], tuple[TicketLock | None, T]]) -> T:
        """Apply ``change`` to the stored lock atomically. ``change`` gets the stored lock (None if there is none)
        and returns the lock to store (None: delete it) and a result; it may run more than once (on a conflict)."""
        key = self.key_prefix + conversation_id

        def transaction(pipe: Any) -> T:
            stored = pipe.get(key)  # immediate: the key is watched, the transaction has not started
            lock = TicketLock.from_dict(json.loads(stored)) if stored else None
            new, result = change(lock)
            pipe.multi()
            if new is None:
                pipe.delete(key)
            else:
                pipe.set(key, new.dumps())
            return result

        result: T = self.red.transaction(transaction, key, value_from_callable=True)
        return result

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        def issue(lock: TicketLock | None) -> tuple[TicketLock | None, int]:
            lock = lock or self.create_lock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        try:
            return self._change(conversation_id, issue)
        except Exception as error:  # as Rasa's: the channel's request fails with a LockError
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def update_lock(self, conversation_id: str) -> None:
        def drop_expired(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is not None:
                lock.remove_expired_tickets()
            return lock, None

        self._change(conversation_id, drop_expired)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        def finish(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is not None:
                lock.remove_ticket_for(ticket_number)
            return lock, None

        self._change(conversation_id, finish)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Remove this ticket, and the lock with it if no one else holds a ticket, in one transaction."""

        def finish_and_drop_if_empty(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is None:
                return None, None
            lock.remove_ticket_for(ticket_number)  # drops expired tickets too
            return (lock if lock.is_someone_waiting() else None), None

        self._change(conversation_id, finish_and_drop_if_empty)
