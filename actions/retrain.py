"""Optional background retrain after KB publishes (``WARMLINE_KB_AUTO_RETRAIN_S``), then a hot load into Rasa.

Debounced: every publish restarts the quiet period, so an editor publishing ten articles causes one training run.
A publish during a training run queues exactly one more run after it. Training runs ``rasa train`` in a worker
thread (it is a subprocess); the action server keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

# A Rasa training of the demo KB takes ~20 s here; an hour means something is stuck, not slow.
TRAIN_TIMEOUT_S = 3600


class Retrainer:
    def __init__(self, delay_s: float, train: Callable[[], None]) -> None:
        self.delay_s = delay_s
        self._train = train
        self._waiting: asyncio.Task[None] | None = None
        self._running = False
        self._again = False
        self.runs = 0

    def poke(self) -> None:
        """The published KB changed: (re)start the quiet period, or queue one more run if training now."""
        if self._running:
            self._again = True
            return
        if self._waiting is not None:
            self._waiting.cancel()
        self._waiting = asyncio.get_running_loop().create_task(self._after_quiet())

    async def _after_quiet(self) -> None:
        await asyncio.sleep(self.delay_s)
        self._running, self._waiting = True, None
        try:
            await asyncio.to_thread(self._train)
            self.runs += 1
        except Exception:
            log.exception("background retrain failed; the bot keeps the model it has (answers are unaffected)")
        finally:
            self._running = False
        if self._again:
            self._again = False
            self.poke()

    async def close(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()


def train_and_load() -> Callable[[], None]:
    """Training is the operator's command (``warmline train --load``), run as a child process with this server's
    environment: the action server sits below the operator glue and does not import it."""
    command = [sys.executable, "-m", "warmline.cli", "train", "--load"]

    def run() -> None:
        subprocess.run(command, check=True, timeout=TRAIN_TIMEOUT_S)
        log.info("Rasa retrained on the published KB (if it changed) and hot-loaded")

    return run
