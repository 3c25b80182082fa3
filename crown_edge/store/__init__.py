"""Durable workshop store (SQLite, WAL, synchronous=FULL): the only place that speaks SQL."""

from crown_edge.store.figures import Counts, Figures
from crown_edge.store.jobs import Job, MachineRow, RunEnd, RunRecord, StockRow, Verdict
from crown_edge.store.queue import Pick, QueuedRow, QueueView
from crown_edge.store.store import Store

__all__ = [
    "Counts",
    "Figures",
    "Job",
    "MachineRow",
    "Pick",
    "QueueView",
    "QueuedRow",
    "RunEnd",
    "RunRecord",
    "StockRow",
    "Store",
    "Verdict",
]
