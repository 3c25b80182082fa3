"""The hardware-in-loop rig: the seed's acceptance tests and fault scenarios, run against the
whole flow (``crown_edge.stack.FullStack``) with simulated or real machines."""
