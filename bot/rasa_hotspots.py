"""Two per-turn costs of Rasa 3.6.21 that do the same work on every call, done once instead.

Profiled on a bot turn with the KB action (py-spy, Rasa's main thread, 2026-12-01): half of Rasa's CPU went to two
lookups whose answers never change while the process runs:

* ``Event.resolve_by_type`` walks every subclass of ``Event`` recursively, with ``inspect.isabstract`` on each,
  for every event it deserialises. The tracker store deserialises the whole conversation on every turn, so this
  cost grows with the conversation (25 % of the turn on a long chat). Here: a dict from type name to class, built
  from the same walk and rebuilt when a name is missing (a subclass imported later).
* ``RemoteAction._validate_action_result`` calls ``jsonschema.validate``, which checks the (constant) schema against
  its meta-schema and builds a new validator on every action call (24 % of the turn). Here: the schema is checked
  and the validator built once; every response is still validated the same way and fails with the same error.

Rasa is pinned (rasa==3.6.21), and ``install`` checks that version: on another version it changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import jsonschema
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.events import Event
from rasa.shared.utils.common import all_subclasses
from rasa.version import __version__ as rasa_version

logger = logging.getLogger(__name__)

PINNED_RASA = "3.6.21"
_ORIGINALS: dict[str, Any] = {}
_event_types: dict[str, type[Event]] = {}


def _event_class(type_name: str) -> type[Event] | None:
    global _event_types
    cls = _event_types.get(type_name)
    if cls is None:  # first use, a subclass imported since, or an unknown name (which costs what Rasa's walk does)
        # Swapped in whole, never filled in place; reversed: the first in Rasa's walk order wins, as in its loop.
        _event_types = {c.type_name: c for c in reversed(all_subclasses(Event))}
        cls = _event_types.get(type_name)
    return cls


def resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
    """``Event.resolve_by_type`` with the subclass walk done once (same result, same errors)."""
    cls = _event_class(type_name)
    if cls is not None:
        return cls
    if type_name == "topic":
        return None  # Rasa's backwards compatibility for old TopicSet events
    if default is not None:
        return default
    raise ValueError(f"Unknown event name '{type_name}'.")


_action_validator: Any = None


def _validator() -> Any:
    global _action_validator
    if _action_validator is None:
        schema = RemoteAction.action_response_format_spec()
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        _action_validator = cls(schema)
    return _action_validator


def validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    """``RemoteAction._validate_action_result`` with one validator for the process (same checks, same message)."""
    error = jsonschema.exceptions.best_match(_validator().iter_errors(result))
    if error is None:
        return True
    # Rasa's wording, so logs and tests read the same as with the original.
    error.message += (
        ". Failed to validate Action server response from API, make sure your response from the Action endpoint "
        f"is valid. For more information about the format visit {DOCS_BASE_URL}/custom-actions"
    )
    raise error


def install() -> bool:
    """Replace the two methods (idempotent); returns whether they are in place."""
    if rasa_version != PINNED_RASA:
        logger.warning("Rasa %s is not the pinned %s: its per-turn hot spots are left as they are", rasa_version,
                       PINNED_RASA)  # fmt: skip
        return False
    if not _ORIGINALS:
        _ORIGINALS["resolve_by_type"] = Event.__dict__["resolve_by_type"]
        _ORIGINALS["validate"] = RemoteAction._validate_action_result
        Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[method-assign,assignment]
        RemoteAction._validate_action_result = validate_action_result  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """Put Rasa's own methods back (for the tests that compare both)."""
    if _ORIGINALS:
        Event.resolve_by_type = _ORIGINALS.pop("resolve_by_type")  # type: ignore[method-assign]
        RemoteAction._validate_action_result = _ORIGINALS.pop("validate")  # type: ignore[method-assign]
