"""What tests need to talk to the embedded (locked-down) mosquitto."""

from __future__ import annotations

import pytest

from crown_edge.embedded import find_mosquitto

MOSQUITTO_MISSING = "mosquitto is not installed (apt-get install mosquitto): MQTT tests skipped"

#: mark for tests (or modules) that start their own broker
needs_mosquitto = pytest.mark.skipif(find_mosquitto() is None, reason=MOSQUITTO_MISSING)
