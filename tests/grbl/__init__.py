"""Tests of the GRBL driver, its protocol and the GRBL simulator."""
