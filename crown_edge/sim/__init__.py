"""Machine simulators (GRBL laser on a pty, Modbus device) for tests, `crown-edge up` and the HIL rig."""
