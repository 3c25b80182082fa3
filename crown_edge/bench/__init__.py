"""Benchmarks run by ``crown-edge bench NAME`` (DESIGN.md §9).

Each module exposes ``run(quick: bool) -> dict``.
"""
