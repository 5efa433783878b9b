"""The background retrain's debounce (actions/retrain.py), with a recording fake trainer."""

from __future__ import annotations

import asyncio
import threading

from actions.retrain import Retrainer


class FakeTrainer:
    def __init__(self, seconds: float = 0.0) -> None:
        self.calls = 0
        self.seconds = seconds
        self.release = threading.Event()

    def __call__(self) -> None:
        self.calls += 1
        if self.seconds:
            self.release.wait(self.seconds)


async def test_a_burst_of_publishes_trains_once() -> None:
    train = FakeTrainer()
    retrainer = Retrainer(0.2, train)
    for _ in range(5):
        retrainer.poke()
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.4)
    assert train.calls == 1 and retrainer.runs == 1


async def test_a_publish_during_training_queues_one_more_run() -> None:
    train = FakeTrainer(seconds=5)
    retrainer = Retrainer(0.05, train)
    retrainer.poke()
    await asyncio.sleep(0.2)  # training now
    retrainer.poke()
    retrainer.poke()
    train.release.set()
    await asyncio.sleep(0.5)
    assert train.calls == 2
    await retrainer.close()


async def test_a_failing_training_is_logged_not_raised() -> None:
    def broken() -> None:
        raise RuntimeError("rasa train failed")

    retrainer = Retrainer(0.01, broken)
    retrainer.poke()
    await asyncio.sleep(0.2)
    assert retrainer.runs == 0
