"""Cloud side of the order flow: the Order API (HTTP + WebSocket status + customer pages)."""

from __future__ import annotations

from crown_edge.cloud.app import ApiSettings, OrderApi, OrderSender, create_app
from crown_edge.cloud.auth import Credentials

__all__ = ["ApiSettings", "Credentials", "OrderApi", "OrderSender", "create_app"]
