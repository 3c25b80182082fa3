"""Benchmarks run by ``crown-edge bench NAME`` (DESIGN.md §9); each module exposes ``run(quick)``."""
