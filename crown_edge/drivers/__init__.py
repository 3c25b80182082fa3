"""Machine drivers: GRBL lasers over serial, Modbus devices from profiles."""
