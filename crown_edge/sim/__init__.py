"""Machine simulators (GRBL laser on a pty, Modbus device) for tests, `up` and the HIL rig."""
