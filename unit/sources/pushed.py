"""Frames pushed in by another part of the program (a test, a benchmark, a harness): no camera at all."""
from __future__ import annotations

import queue
import time
from typing import Callable

import numpy as np

from unit.sources.frames import Frame, SourceEnded


class QueueSource:
    """Frames pushed in with `push()`, handed out to the capture loop in order.

    `join()` waits until every pushed frame has been taken by the capture loop, so a caller can order
    frames against pin changes exactly as a camera and a sensor would.
    """
    live = True

    def __init__(self, clock: Callable[[], float] = time.time, maxsize: int = 0):
        self.clock = clock
        self._q: queue.Queue[Frame | None] = queue.Queue(maxsize)
        self._seq = 0
        self._ended = False
        self._taken = False

    def push(self, image: np.ndarray, t: float | None = None) -> None:
        self._seq += 1
        self._q.put(Frame(image, self.clock() if t is None else t, self._seq))

    def end(self) -> None:
        """No more frames: the capture loop stops as it would at the end of a replay."""
        self._q.put(None)

    def join(self) -> None:
        self._q.join()

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self, timeout: float) -> Frame | None:
        # the frame handed out last time counts as done only now, once the loop has passed it on
        if self._taken:
            self._taken = False
            self._q.task_done()
        if self._ended:
            raise SourceEnded()
        try:
            frame = self._q.get(timeout=timeout)
        except queue.Empty:
            return None
        if frame is None:
            self._q.task_done()
            self._ended = True
            raise SourceEnded()
        self._taken = True
        return frame
