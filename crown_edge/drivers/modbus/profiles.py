"""Built-in device profiles, shipped inside the package as TOML text.

``config/devices/rotary-io.toml`` is the documented copy of :data:`ROTARY_IO`; a test keeps them
identical. The text lives in a module (not a data file) so it ships with any install.
"""

from __future__ import annotations

#: The rotary chuck and machine I/O module profile.
ROTARY_IO = """\
# crown-edge Modbus device profile: rotary chuck and machine I/O module.
#
# Addresses are zero-based protocol (PDU) addresses: "40001" in a datasheet is holding register 0.
# kind: coil | discrete_input | holding_register | input_register
# type: bool (bits) | uint16 | int16 | uint32 | int32 | float32 (registers); value = raw * scale
# access: read | read_write (coils and holding registers only)
#
# This file is the documented copy of the built-in profile "rotary-io"
# (crown_edge/drivers/modbus/profiles.py); a test keeps the two identical.

[device]
name = "rotary-io"
description = "Rotary chuck driver and machine I/O: door, e-stop, air assist, exhaust"
unit = 1          # default Modbus unit (slave) id of every point
timeout_s = 0.5   # per request
retries = 1       # further attempts after a request timed out

[monitor]
poll_hz = 20            # interlock polls per second while a job runs
failures_to_trip = 2    # consecutive failed polls that trip the monitor (fail safe)

[points.door_closed]
kind = "discrete_input"
address = 0
description = "Lid switch; true while the door is closed"

[points.estop_released]
kind = "discrete_input"
address = 1
description = "E-stop loop; true while the e-stop is released"

[points.chuck_clamp]
kind = "coil"
address = 0
description = "Rotary chuck jaws; true clamps"

[points.rotary_enable]
kind = "coil"
address = 1
description = "Rotary stepper driver enable"

[points.air_assist]
kind = "coil"
address = 2
description = "Air assist solenoid"

[points.exhaust_fan]
kind = "coil"
address = 3
description = "Fume exhaust fan"

[points.steps_per_rotation]
kind = "holding_register"
address = 0
type = "uint32"
access = "read"
description = "Rotary motor steps per full turn of the chuck"

[points.air_pressure]
kind = "input_register"
address = 0
type = "uint16"
scale = 0.01
description = "Air assist supply pressure, bar"

[interlocks.door_closed]
safe = true
monitor = true
reason = "door_open"

[interlocks.estop_released]
safe = true
monitor = true
reason = "estop_pressed"

[interlocks.exhaust_fan]
safe = true
monitor = false
reason = "exhaust_off"

[simulator.initial]
door_closed = true
estop_released = true
steps_per_rotation = 3200
air_pressure = 6.0
"""

#: Built-in profiles by name, for :func:`~crown_edge.drivers.modbus.profile.load_profile`.
BUILTIN: dict[str, str] = {"rotary-io": ROTARY_IO}
