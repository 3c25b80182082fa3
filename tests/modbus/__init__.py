"""Modbus device layer: profiles, codec, device, interlocks, simulator."""
