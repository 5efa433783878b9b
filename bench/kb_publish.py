"""KB publish-to-live time: from an editor's publish (REST) to the bot answering with it (Socket.IO), no restart.

    .venv/bin/python bench/kb_publish.py [--rounds 5] [--retrain] [--json bench/out/kb_publish.json]

Starts the real stack (Rasa, action server, relay on SQLite in a scratch dir, the demo KB seeded into the
database). Each round, through the editor API: create and publish a new article, publish an edit of its answer,
then roll back to version 1. After each, a customer asks one of the article's example questions, in a fresh
conversation every time, until the reply is the expected answer; the time from the publish request being sent to
that reply is the publish-to-live time. The polling resolution is one bot turn (about 0.2-0.5 s). The action
server's own log gives the index rebuild time of each change ("KB indexed ... in X s") and, for the encoder
fine-tuned on the KB in the background, how long after a change it went live ("KB encoder fine-tuned ..."; the
run waits for the one of the final KB). With ``--retrain`` it
also times ``warmline train --load``'s work (train Rasa on the published KB, ``PUT /model``) until Rasa's NLU
knows the new article's intent: not needed for answers, but for Rasa's own parse of it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from harness import print_table, write_json

from tests.kb_client import Editor, make_agent, seconds_until_answer
from tests.stack import Stack, running_stack
from warmline.training import ensure_model, load_into_rasa

PASSWORD = "bench-editor-pass"
TOPICS = [
    (
        "gift-cards",
        "Brightwave gift cards",
        ["Do you sell gift cards?", "can I buy a Brightwave gift card for someone"],
    ),
    ("pet-policy", "Pets in Brightwave stores", ["can I bring my dog into your store", "are pets allowed in the shop"]),
    (
        "student-discount",
        "Student discounts",
        ["do you have a student discount", "is there a cheaper plan for students"],
    ),
    ("sim-only", "SIM-only mobile plans", ["do you sell sim only plans", "can I get just a SIM card from you"]),
    (
        "gaming-latency",
        "Online gaming and ping",
        ["my ping is high when gaming", "how do I reduce lag in online games"],
    ),
]
INDEXED = re.compile(r"KB indexed: (\d+) articles \(r(\d+)\) in ([\d.]+) s")
TUNED = re.compile(r"KB encoder fine-tuned on r(\d+) in ([\d.]+) s \((\d+) steps\); live ([\d.]+) s after")


async def one_round(editor: Editor, relay_url: str, topic: tuple[str, str, list[str]]) -> dict[str, float]:
    article_id, title, questions = topic
    v1, v2 = f"{title} (v1): ask in any store.", f"{title} (v2): now also online."
    content = {"title": title, "answer": v1, "questions": questions, "tags": ["bench"], "team": "support"}
    await editor.ok("POST", "/api/kb/articles", {"id": article_id, **content})
    times: dict[str, float] = {}
    started = time.monotonic()
    await editor.ok("POST", f"/api/kb/articles/{article_id}/publish", {})
    times["new article"] = await seconds_until_answer(relay_url, questions[0], v1, started)
    await editor.ok("PUT", f"/api/kb/articles/{article_id}", {**content, "answer": v2})
    started = time.monotonic()
    await editor.ok("POST", f"/api/kb/articles/{article_id}/publish", {})
    times["edited answer"] = await seconds_until_answer(relay_url, questions[0], v2, started)
    started = time.monotonic()
    await editor.ok("POST", f"/api/kb/articles/{article_id}/rollback", {"version": 1})
    times["rollback"] = await seconds_until_answer(relay_url, questions[0], v1, started)
    return times


async def retrain_seconds(editor: Editor, stack: Stack) -> float:
    """Publish one more article, then train on the published KB and hot-load; seconds until Rasa knows it."""
    article = {"id": "retrain-probe", "title": "Street cabinets", "answer": "Fibre equipment.",
               "questions": ["what is the green cabinet on my street", "why is there a green box on the pavement"]}  # fmt: skip
    await editor.ok("POST", "/api/kb/articles", article)
    await editor.ok("POST", "/api/kb/articles/retrain-probe/publish", {})
    started = time.monotonic()
    model, trained = await asyncio.to_thread(ensure_model, stack.settings)
    assert trained, "the published KB differs from the model's, so this must train"
    await asyncio.to_thread(load_into_rasa, stack.settings, model)
    seconds = time.monotonic() - started
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{stack.settings.rasa_url}/model/parse", json={"text": "/kb_retrain_probe"}) as r:
            assert (await r.json())["intent"]["name"] == "kb_retrain_probe"
    return seconds


def rebuild_times(log_dir: Path) -> list[float]:
    """Index rebuilds after the first (startup) one, from the action server's log."""
    found: list[float] = []
    for log in log_dir.glob("action-server-*.log"):
        found.extend(float(m.group(3)) for m in INDEXED.finditer(log.read_text(errors="replace")))
    return found[1:]


def tuned_lines(log_dir: Path) -> list[tuple[int, float, float]]:
    """(revision, fine-tune seconds, seconds from the publish being seen to the tuned encoder being live)."""
    found: list[tuple[int, float, float]] = []
    for log in log_dir.glob("action-server-*.log"):
        text = log.read_text(errors="replace")
        found.extend((int(m.group(1)), float(m.group(2)), float(m.group(4))) for m in TUNED.finditer(text))
    return found


def latest_revision(log_dir: Path) -> int:
    revisions = [0]
    for log in log_dir.glob("action-server-*.log"):
        revisions.extend(int(m.group(2)) for m in INDEXED.finditer(log.read_text(errors="replace")))
    return max(revisions)


async def wait_for_tuned(log_dir: Path, timeout_s: float = 300.0) -> tuple[int, float, float] | None:
    """After the last change: wait until the encoder fine-tuned on the final KB revision is live (from the log)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        latest = latest_revision(log_dir)
        done = [t for t in tuned_lines(log_dir) if t[0] == latest]
        if done:
            return done[-1]
        await asyncio.sleep(1.0)
    return None


async def run(rounds: int, retrain: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch, running_stack(Path(scratch), fine_tune=True) as stack:
        await make_agent(stack.settings.db_url, "bench-editor", PASSWORD, "editor")
        editor = await Editor.login(stack.relay_url, "bench-editor", PASSWORD)
        samples: dict[str, list[float]] = {}
        for i in range(rounds):
            topic = TOPICS[i % len(TOPICS)]
            topic = (f"{topic[0]}-{i}", f"{topic[1]} #{i}", topic[2])  # a new article each round
            for kind, seconds in (await one_round(editor, stack.relay_url, topic)).items():
                samples.setdefault(kind, []).append(seconds)
            await editor.ok("POST", f"/api/kb/articles/{topic[0]}/unpublish")  # the next round starts from the demo KB
            await asyncio.sleep(1.5)  # let the unpublish be indexed before the next measurement starts
        rebuilds = rebuild_times(stack.settings.logs_dir)
        final_tuned = await wait_for_tuned(stack.settings.logs_dir)
        tuned = tuned_lines(stack.settings.logs_dir)
        articles = len((await editor.ok("GET", "/api/kb/articles?status=published"))["articles"])
        retrained = await retrain_seconds(editor, stack) if retrain else None
    result: dict[str, object] = {"rounds": rounds, "published_articles": articles, "changes": {}}
    for kind, values in samples.items():
        result["changes"][kind] = {  # type: ignore[index]
            "n": len(values),
            "median_s": round(statistics.median(values), 2),
            "max_s": round(max(values), 2),
            "min_s": round(min(values), 2),
        }
    if retrained is not None:
        result["retrain_and_hot_load_s"] = round(retrained, 1)
    # The encoder fine-tuned on the KB (actions/kb_service.py) follows each change once the KB is quiet; a newer
    # change stops a run in progress, so during the rounds only some runs finish.
    if tuned:
        lives = [t[2] for t in tuned]
        result["tuned_encoder"] = {
            "runs_finished": len(tuned),
            "fine_tune_median_s": round(statistics.median(t[1] for t in tuned), 2),
            "live_after_publish_median_s": round(statistics.median(lives), 2),
            "live_after_publish_max_s": round(max(lives), 2),
            "final_revision_live_after_s": round(final_tuned[2], 2) if final_tuned else None,
        }
    if rebuilds:
        result["index_rebuild_s"] = {
            "n": len(rebuilds),
            "median_s": round(statistics.median(rebuilds), 2),
            "max_s": round(max(rebuilds), 2),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--retrain", action="store_true", help="also time a Rasa retrain + hot load")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = asyncio.run(run(args.rounds, args.retrain))
    rows = [{"change": kind, **stats} for kind, stats in figures["changes"].items()]  # type: ignore[union-attr]
    print_table(
        f"KB publish to live (demo KB, {figures['published_articles']} published articles, {args.rounds} rounds)",
        rows,
        ["change", "n", "median_s", "min_s", "max_s"],
    )
    if "index_rebuild_s" in figures:
        print(f"\naction server index rebuilds: {figures['index_rebuild_s']}")
    if "tuned_encoder" in figures:
        print(f"encoder fine-tuned on the KB (background, after each change): {figures['tuned_encoder']}")
    if "retrain_and_hot_load_s" in figures:
        print(f"Rasa retrain on the published KB + hot load (PUT /model): {figures['retrain_and_hot_load_s']} s")
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
