"""Log lines that a client can provoke, at a bounded rate.

A client decides how often the broker refuses or closes its connections, and a full
disk fails every produce request: one line per event lets one client flood the log
(a fuzz run wrote 108,835 "closing" lines). A :class:`ThrottledLog` writes at most
``burst`` lines per ``interval`` seconds for one kind of event; the lines it drops
are counted, and the count is written with the first line of the next interval, so
the log still says how often it happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ThrottledLog:
    """At most ``burst`` lines per ``interval`` seconds, then a count of the rest.

    Not thread-safe: each instance is used from the event loop (or under the lock of
    the code that owns it); a race would at worst miscount a line.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        level: int = logging.WARNING,
        burst: int = 10,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.level = level
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._window_start = -float("inf")
        self._logged = 0
        self.suppressed = 0  # lines dropped in the current interval
        self.total_suppressed = 0

    def __call__(self, msg: str, *args: object) -> None:
        now = self._clock()
        if now - self._window_start >= self.interval:
            if self.suppressed:
                self.logger.log(
                    self.level,
                    "%d more %s in the last %.0f s were not logged",
                    self.suppressed,
                    self.what,
                    now - self._window_start,
                )
            self._window_start = now
            self._logged = 0
            self.suppressed = 0
        if self._logged < self.burst:
            self._logged += 1
            if self._logged == self.burst:
                msg += " (further %s are counted, not logged, for %.0f s)"
                args = (*args, self.what, self.interval)
            self.logger.log(self.level, msg, *args)
        else:
            self.suppressed += 1
            self.total_suppressed += 1
