"""Back-off: exponential, capped, jittered where many clients retry at once. Pure (the random
source is injected).

Every reconnect and retry delay in crown-edge comes from here: :class:`Backoff` for a loop that
retries until it succeeds (the MQTT link, the bridge, the SQS dispatcher, the GRBL driver), and
:func:`capped_delay` for a schedule kept as an attempt count in a database (the outbox's resend
timer, :class:`~crown_edge.sync.delivery.RetransmitSchedule`; the customer notifier's retries,
so a cloud process that takes over sending continues the schedule).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable


def capped_delay(initial: float, maximum: float, factor: float, attempt: int) -> float:
    """``initial`` x ``factor`` ** (``attempt`` - 1), at most ``maximum`` (attempt 1 = the first).

    Never overflows, whatever the attempt count.
    """
    exponent = max(0, attempt - 1)
    if exponent == 0 or factor == 1:
        return float(min(maximum, initial))
    if exponent * math.log(factor) >= math.log(maximum / initial):
        return float(maximum)
    return float(min(maximum, initial * factor**exponent))


def jittered(delay: float, rand: Callable[[], float] = random.random) -> float:
    """``delay`` drawn uniformly from its upper half, ``[delay/2, delay]``: clients retrying
    together spread out, and none waits less than half the schedule."""
    return delay / 2 + (delay / 2) * rand()


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
        self._attempt = 0

    def next(self) -> float:
        """The delay before the next attempt; grows the following one."""
        self._attempt += 1
        delay = capped_delay(self.initial, self.maximum, self.factor, self._attempt)
        return jittered(delay, self._rand)

    def reset(self) -> None:
        """Back to ``initial`` after a successful connection."""
        self._attempt = 0
