"""Durable workshop store (SQLite, WAL, synchronous=FULL)."""

from crown_edge.store.jobs import Job, RunRecord, StockRow
from crown_edge.store.store import Store

__all__ = ["Job", "RunRecord", "StockRow", "Store"]
