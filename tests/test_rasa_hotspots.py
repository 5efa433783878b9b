"""bot/rasa_hotspots.py gives the answers of the Rasa methods it replaces, errors included (run in Rasa's
environment, where those methods live, against Rasa's own originals)."""

from __future__ import annotations

import json
import subprocess

from common.settings import ROOT, Settings
from warmline.training import rasa_env

COMPARE = """
import json
import jsonschema
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity
from rasa.shared.utils.common import all_subclasses
from bot import rasa_hotspots

names = sorted({cls.type_name for cls in all_subclasses(Event)}) + ["topic", "no_such_event"]

def lookups():
    out = {}
    for name in names:
        for default in (None, SlotSet):
            try:
                cls = Event.resolve_by_type(name, default)
                out[f"{name}/{default}"] = None if cls is None else cls.__qualname__
            except ValueError as exc:
                out[f"{name}/{default}"] = "ValueError: " + str(exc)
    return out

responses = [
    {"events": [{"event": "slot", "name": "x", "value": 1}], "responses": [{"text": "hi"}]},
    {"events": [], "responses": []},
    {},
    {"events": "not a list"},
    {"events": [{"event": "slot"}]},
    {"events": [{"event": "no_such_event"}]},
    {"responses": [1, 2]},
    {"events": [{"event": "user", "text": 3}]},
]

def validations():
    out = []
    for response in responses:
        try:
            out.append(RemoteAction("a", None)._validate_action_result(json.loads(json.dumps(response))))
        except jsonschema.ValidationError as exc:
            out.append("ValidationError: " + exc.message)
    return out

EVENTS = DialogueStateTracker.from_events("s", [
    ActionExecuted("action_listen", timestamp=1.0), SlotSet("x", 2, timestamp=3.0),
    UserUttered("hello", {"name": "greet", "confidence": 0.9}, timestamp=2.0), ActionExecuted("utter_greet", timestamp=4.0),
]).current_state(EventVerbosity.ALL)["events"]

def round_trip():
    events = json.loads(json.dumps(EVENTS))
    return json.dumps(DialogueStateTracker.from_dict("s", events).current_state(EventVerbosity.ALL),
                      sort_keys=True, default=str)

rasa_own = (lookups(), validations(), round_trip())
assert rasa_hotspots.install() and rasa_hotspots.install()
ours = (lookups(), validations(), round_trip())
rasa_hotspots.uninstall()
print(json.dumps({"same": rasa_own == ours, "rasa": rasa_own, "ours": ours,
                  "restored": Event.resolve_by_type is not rasa_hotspots.resolve_by_type}))
"""


def test_hot_spot_replacements_answer_exactly_as_rasa_does() -> None:
    done = subprocess.run(
        [str(Settings().rasa_python), "-c", COMPARE], cwd=ROOT, env=rasa_env(), capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    lookups, validations, _ = result["rasa"]
    assert len(lookups) > 40 and "ValueError: Unknown event name 'no_such_event'." in lookups.values()
    assert validations[:3] == [True, True, True] and all(str(v).startswith("ValidationError") for v in validations[3:])
    assert result["ours"] == result["rasa"] and result["same"]
    assert result["restored"]
