"""A job is laid out once: the program the machine runs is the render its estimate came from."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import crown_edge.toolpath
from crown_edge.catalog import Catalog
from crown_edge.config import MachineConfig
from crown_edge.daemon import programs
from crown_edge.daemon.programs import render_program, text_estimate


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The job ids the toolpath actually rendered (the cache starts empty)."""
    programs._render_text.cache_clear()
    seen: list[str] = []
    real = crown_edge.toolpath.render_job

    def counted(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["job_id"])
        return real(*args, **kwargs)

    monkeypatch.setattr(crown_edge.toolpath, "render_job", counted)
    yield seen
    programs._render_text.cache_clear()


def _job(job_id: str, text: tuple[str, ...] = ("Club Champion",), **intake: Any) -> Any:
    fields = {"text": text, "font": None, "material": None, "artwork_url": None, **intake}
    return SimpleNamespace(job_id=job_id, item_id="plaque-a5", intake=SimpleNamespace(**fields))


def _estimate(catalog: Catalog, job: Any) -> float | None:
    item = catalog.item(job.item_id)
    material = catalog.material(item.material)
    return text_estimate(item, job.intake.text, None, material, job.job_id)


def test_the_run_takes_the_render_the_estimate_made(catalog: Catalog, renders: list[str]) -> None:
    job = _job("J-1")
    estimate = _estimate(catalog, job)
    program = render_program(job, catalog, MachineConfig(id="m", driver="sim"))
    assert renders == ["J-1"]
    assert estimate == program.estimate_s
    assert program.lines  # the whole program, not an empty stand-in


def test_another_text_or_job_is_rendered_afresh(catalog: Catalog, renders: list[str]) -> None:
    _estimate(catalog, _job("J-1"))
    render_program(_job("J-1", ("Club Champion", "2026")), catalog)
    render_program(_job("J-2"), catalog)  # the program's header names its job
    assert renders == ["J-1", "J-1", "J-2"]


def test_a_dry_machine_gets_the_dry_form_of_the_same_render(
    catalog: Catalog, renders: list[str]
) -> None:
    wet = render_program(_job("J-1"), catalog, MachineConfig(id="m", driver="sim"))
    dry = render_program(_job("J-1"), catalog, MachineConfig(id="m", driver="sim", laser="dry"))
    assert renders == ["J-1"]
    assert dry.lines != wet.lines
    assert render_program(_job("J-1"), catalog).lines == wet.lines  # the cached one is untouched


def test_a_text_that_does_not_fit_has_no_estimate_and_is_not_kept(
    catalog: Catalog, renders: list[str]
) -> None:
    job = _job("J-1", ("W" * 400,))
    assert _estimate(catalog, job) is None
    assert _estimate(catalog, job) is None
    assert renders == ["J-1", "J-1"]  # a refusal is not kept: each caller gets the real error
