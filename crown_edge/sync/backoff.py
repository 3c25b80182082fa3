"""Reconnect back-off: exponential, jittered, capped. Pure (the random source is injected)."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays for successive reconnect attempts: ``initial``, doubling, capped at ``maximum``.

    Each delay is drawn uniformly from ``[delay/2, delay]`` so a fleet of workshops coming back
    after a broker outage does not reconnect in lock-step.
    """

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        factor: float = 2.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < initial <= maximum or factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self._rand = rand
        self._current = initial

    def next(self) -> float:
        """The delay before the next attempt; grows the following one."""
        delay = self._current
        self._current = min(self._current * self.factor, self.maximum)
        return delay / 2 + (delay / 2) * self._rand()

    def reset(self) -> None:
        """Back to ``initial`` after a successful connection."""
        self._current = self.initial
