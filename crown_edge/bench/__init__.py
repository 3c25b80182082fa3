"""Benchmarks run by ``crown-edge bench NAME``.

Each module exposes ``run(quick: bool) -> dict``.
"""
