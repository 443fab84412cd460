"""The event-loop watchdog: every stall of a process's asyncio loop over 100 ms is logged and counted.

One request must never hold up the others, so nothing slow may run on the loop itself (password
hashes, file hashing and big conversions run in threads).  The watchdog proves it in production:

* the loop stamps a heartbeat every 20 ms (a timer callback: it runs only when the loop is free);
* a small thread checks the stamp; when it is older than the threshold, the thread takes the
  loop thread's current stack (``sys._current_frames``, no cost while all is well), which is
  the code that blocks;
* when the loop comes back, the stall is logged once, with its length, the CPU time its thread
  used meanwhile and that stack (CPU near the length: code computing on the loop; little CPU and
  our code on the stack: a blocking call; little CPU and only the loop's own frames: the machine
  gave the process no CPU), and
  recorded on the operator port's ``/metrics`` as ``cumulo_event_loop_stalls_total`` and the
  histogram ``cumulo_event_loop_stall_seconds`` (each process's samples labelled ``process``:
  ``leader`` or ``worker-N``, see ``workermetrics``).

``[api] stall_threshold`` (seconds, default 0.1) sets the threshold; 0 turns the watchdog off.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

from prometheus_client import Counter, Histogram

LOG = logging.getLogger("cumulo.watchdog")
STALLS = Counter("cumulo_event_loop_stalls_total", "Event-loop stalls over the threshold")
STALL_SECONDS = Histogram("cumulo_event_loop_stall_seconds", "How long the event loop was blocked",
                          buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
BEAT = 0.02


class Watchdog:
    def __init__(self, process: str = "leader", threshold: float = 0.1) -> None:
        self.process, self.threshold = process, threshold
        self._beat = time.monotonic()
        self._cpu = 0.0
        self._stack: str | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop_thread = 0
        self.stalls = 0

    def start(self) -> None:
        if self.threshold <= 0:
            return
        loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._beat, self._cpu = time.monotonic(), time.thread_time()
        self._handle = loop.call_later(BEAT, self._tick, loop)
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now, cpu = time.monotonic(), time.thread_time()
        late = now - self._beat - BEAT
        used = cpu - self._cpu
        self._beat, self._cpu = now, cpu
        if late > self.threshold:
            self.stalls += 1
            STALLS.inc()
            STALL_SECONDS.observe(late)
            stack, self._stack = self._stack, None
            LOG.warning("event loop of %s blocked for %.3f s (%.3f s of CPU in its thread)%s", self.process, late,
                        used, f"; it was running:\n{stack}" if stack else "")
        self._handle = loop.call_later(BEAT, self._tick, loop)

    def _watch(self) -> None:
        caught_for = 0.0
        while not self._stop.wait(self.threshold / 4):
            beat = self._beat
            if time.monotonic() - beat > self.threshold + BEAT and caught_for != beat:
                frame = sys._current_frames().get(self._loop_thread)
                if frame is not None:
                    self._stack = "".join(traceback.format_list(traceback.extract_stack(frame)[-12:]))
                caught_for = beat
