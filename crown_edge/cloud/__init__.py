"""Cloud side of the order flow: the Order API (HTTP + WebSocket status + customer pages)."""

from __future__ import annotations

from crown_edge.cloud.app import OrderApi, OrderSender, create_app

__all__ = ["OrderApi", "OrderSender", "create_app"]
