"""Export the KB to Rasa training data: one intent per article, answered by ``action_answer_kb``.

The answers are not copied into Rasa's domain: the action reads them from the live KB, so an edited answer is
used at once, and the articles stay the single source of truth.
"""

from __future__ import annotations

from typing import Any

from knowledge.articles import KnowledgeBase

ANSWER_ACTION = "action_answer_kb"


def nlu_data(kb: KnowledgeBase) -> dict[str, Any]:
    return {
        "version": "3.1",
        "nlu": [
            {"intent": a.intent, "examples": "".join(f"- {_one_line(q)}\n" for q in a.questions)} for a in kb.articles
        ],
    }


def rules_data(kb: KnowledgeBase) -> dict[str, Any]:
    return {
        "version": "3.1",
        "rules": [
            {"rule": f"answer {a.id}", "steps": [{"intent": a.intent}, {"action": ANSWER_ACTION}]} for a in kb.articles
        ],
    }


def domain_data(kb: KnowledgeBase) -> dict[str, Any]:
    return {"version": "3.1", "intents": [a.intent for a in kb.articles]}


def _one_line(text: str) -> str:
    return " ".join(text.split())
