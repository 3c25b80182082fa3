"""Tests of crown_edge.toolpath."""
