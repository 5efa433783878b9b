"""Grouping unanswered questions (knowledge/grouping.py): a pure function over texts."""

from __future__ import annotations

import subprocess
import sys

from knowledge.grouping import group_questions

QUESTIONS = [
    "how do I get a refund",
    "can i get a refund for my order",
    "what is the wifi password for the router",
    "router wifi password",
    "wifi pasword router",  # a typo still lands with its topic (character n-grams)
    "do you ship to canada",
    "shipping to Canada?",
    "is there a student discount",
]


def test_rewordings_group_and_topics_stay_apart() -> None:
    groups = group_questions(list(enumerate(QUESTIONS, start=1)))
    as_sets = [set(g.texts) for g in groups]
    assert as_sets == [
        {"what is the wifi password for the router", "router wifi password", "wifi pasword router"},
        {"how do I get a refund", "can i get a refund for my order"},
        {"do you ship to canada", "shipping to Canada?"},
        {"is there a student discount"},
    ]  # biggest first, then the oldest question
    assert groups[0].label == "router wifi password"  # the most typical member names the group
    assert sorted(i for g in groups for i in g.ids) == list(range(1, len(QUESTIONS) + 1))


def test_edge_cases() -> None:
    assert group_questions([]) == []
    (only,) = group_questions([(7, "hello")])
    assert only.ids == (7,) and only.label == "hello"
    assert group_questions([(1, "   ")]) == []


def test_a_relay_process_does_not_load_scikit_learn_to_start() -> None:
    """The relay imports this module for the KB inbox; scikit-learn and SciPy (about 90 MB and 1.5 s at start) come
    only when an editor's inbox is grouped."""
    code = "import sys, handoff.app; print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
