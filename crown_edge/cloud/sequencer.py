"""The cloud's order keeper for workshop events: per job, in ``seq`` order, once. Pure: no I/O.

A workshop numbers each job's events ``1, 2, 3 …`` (``seq``, written with the event in its
store). Between it and the cloud an event can be lost (no subscriber while the bridge was away, a
broker that forgot a session), repeated (a retransmit whose ack was lost) or overtaken (the
retransmit of a lost event arrives after its successors). Per ``(source, job)`` the sequencer
hands on only the next expected event, so what reaches SQS and the status board is each event
once and in order per job:

- ``seq`` below the expected one: a **duplicate**, dropped (and acknowledged again once its relay
  is confirmed, so a workshop whose ack was lost stops resending it);
- ``seq`` above it: **held** behind the gap (never acknowledged, so the workshop keeps it); once
  the gap is older than ``gap_wait``, :meth:`Sequencer.due_replays` asks the workshop to replay
  the missing span, and again every ``replay_every`` while it stays open;
- the expected ``seq``: **ready**, together with every held event it unblocks.

Where a job's sequence starts: a bridge that has never seen the job (a cloud restart) takes the
workshop's word in ``acked_seq`` (:mod:`crown_edge.sync.delivery`) — the workshop holds acks up to
there, so the cloud has those — and without it trusts the first event it sees. Only a new
track takes the hint: a job this bridge already follows keeps its own record, so an event the
workshop wrongly believes delivered (a row marked sent by a broker PUBACK before this protocol) is
still noticed as a gap and replayed. With several bridges sharing the events, a bridge holding an
event whose predecessor went to another bridge asks for that one again; SQS drops the second
relay by its deduplication id (the event id), and order per job still holds. A ``seq`` more than
``max_hold`` past the expected one (for a job not seen yet: past ``acked_seq``, or 0) is rejected
as implausible (a forged or corrupt event must not pin memory, trigger huge replays or make every
real event look stale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crown_edge.sync.delivery import ACKED_SEQ, MAX_REPLAY_SPAN, ReplayRequest


@dataclass(slots=True)
class _Track:
    next_seq: int
    confirmed: int
    held: dict[int, dict[str, Any]] = field(default_factory=dict)
    gap_since: float | None = None
    asked_at: float | None = None


@dataclass(frozen=True, slots=True)
class Offered:
    """What :meth:`Sequencer.offer` made of one event.

    ``ready``: events to apply and relay now, in order. ``ack_now``: event ids of duplicates the
    cloud already has (acknowledge them again). ``duplicate`` / ``held`` / ``rejected`` say why
    nothing is ready.
    """

    ready: tuple[dict[str, Any], ...] = ()
    ack_now: tuple[str, ...] = ()
    duplicate: bool = False
    held: bool = False
    rejected: str | None = None


def _hint(event: dict[str, Any]) -> int | None:
    value = event.get(ACKED_SEQ)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return min(value, int(event["seq"]) - 1)


class Sequencer:
    """Per ``(source, job)``: the expected ``seq``, the events held behind a gap (module doc)."""

    def __init__(
        self,
        *,
        gap_wait: float = 2.0,
        replay_every: float = 10.0,
        max_hold: int = MAX_REPLAY_SPAN,
        max_tracks: int = 100_000,
    ) -> None:
        self.gap_wait = gap_wait
        self.replay_every = replay_every
        self.max_hold = max_hold
        self.max_tracks = max_tracks
        self._tracks: dict[tuple[str, str], _Track] = {}

    @property
    def held(self) -> int:
        """Events waiting behind gaps."""
        return sum(len(t.held) for t in self._tracks.values())

    def gaps(self) -> list[tuple[str, ReplayRequest]]:
        """Every open gap as ``(source, the span missing)``."""
        return [(s, self._span(j, t)) for (s, j), t in self._tracks.items() if t.held]

    def offer(self, source: str, event: dict[str, Any], now: float) -> Offered:
        """Take ``event`` (already validated: ``job_id`` str, ``seq`` int ≥ 0, ``event_id``)."""
        key = (source, event["job_id"])
        seq, hint = int(event["seq"]), _hint(event)
        track = self._tracks.pop(key, None)
        if track is None:
            if seq > (hint or 0) + self.max_hold:  # not a plausible start (the board's rule)
                return Offered(rejected="implausible_seq")
            base = hint + 1 if hint is not None else seq
            track = _Track(next_seq=base, confirmed=base - 1)
        self._tracks[key] = track  # most recently used last
        self._trim()
        if seq < track.next_seq:
            acked = (event["event_id"],) if seq <= track.confirmed else ()
            return Offered(ack_now=acked, duplicate=True)
        if seq > track.next_seq + self.max_hold:
            return Offered(rejected="implausible_seq")
        if seq > track.next_seq:
            duplicate = seq in track.held
            track.held.setdefault(seq, event)
            if track.gap_since is None:
                track.gap_since = now
            return Offered(duplicate=duplicate, held=not duplicate)
        ready = [event]
        track.next_seq += 1
        self._release(track, ready, now)
        return Offered(tuple(ready))

    def _release(self, track: _Track, ready: list[dict[str, Any]], now: float) -> None:
        while track.next_seq in track.held:
            ready.append(track.held.pop(track.next_seq))
            track.next_seq += 1
        # a new gap (or none) starts its clock afresh
        track.gap_since = now if track.held else None
        track.asked_at = None

    def confirm(self, source: str, job_id: str, seq: int) -> None:
        """The relay of ``seq`` is confirmed: later duplicates of it are acknowledged again."""
        track = self._tracks.get((source, job_id))
        if track is not None and seq > track.confirmed:
            track.confirmed = min(seq, track.next_seq - 1)

    def due_replays(self, now: float) -> list[tuple[str, ReplayRequest]]:
        """Gaps older than ``gap_wait``, not asked about for ``replay_every``; marks them asked."""
        due: list[tuple[str, ReplayRequest]] = []
        for (source, job_id), track in self._tracks.items():
            if not track.held or track.gap_since is None or now - track.gap_since < self.gap_wait:
                continue
            if track.asked_at is not None and now - track.asked_at < self.replay_every:
                continue
            track.asked_at = now
            due.append((source, self._span(job_id, track)))
        return due

    @staticmethod
    def _span(job_id: str, track: _Track) -> ReplayRequest:
        last = min(min(track.held) - 1, track.next_seq + MAX_REPLAY_SPAN - 1)
        return ReplayRequest(job_id, track.next_seq, last)

    def _trim(self) -> None:
        """Forget the least recently seen jobs beyond ``max_tracks`` (never one with a gap)."""
        excess = len(self._tracks) - self.max_tracks
        if excess <= 0:
            return
        for key in [k for k, t in self._tracks.items() if not t.held][:excess]:
            del self._tracks[key]
