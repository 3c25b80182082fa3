"""``crown-edge gcode render`` through typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from crown_edge.toolpath import grammar_violations
from crown_edge.toolpath.cli import render

app = typer.Typer()
app.command()(render)
runner = CliRunner()


def test_render_to_files_with_json(tmp_path: Path) -> None:
    out = tmp_path / "job.gcode"
    svg = tmp_path / "job.svg"
    args = ["--item", "plaque-a5", "--line", "Club Champion", "--line", "2026", "-o", str(out)]
    args += ["--preview", str(svg), "--json", "--job-id", "J-9"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("segments", "cut_length_mm", "travel_length_mm", "estimate_s", "cap_height_mm"):
        assert key in figures
    lines = out.read_text().splitlines()
    assert "(job J-9)" in lines and grammar_violations(lines) == []
    assert svg.read_text().startswith("<svg")


def test_render_to_stdout_with_area() -> None:
    result = runner.invoke(app, ["--area", "60x20", "--line", "Winner"])
    assert result.exit_code == 0
    assert result.stdout.startswith("(crown-edge toolpath v1)")


def test_cylinder_with_a_axis(tmp_path: Path) -> None:
    out = tmp_path / "cup.gcode"
    result = runner.invoke(
        app, ["--item", "cup-silver", "--line", "Cup", "--rotary-axis", "A", "-o", str(out)]
    )
    assert result.exit_code == 0
    assert " A" in out.read_text()


def test_artwork_from_file(tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text(
        "<svg xmlns='http://www.w3.org/2000/svg'><rect x='0' y='0' width='10' height='5'/></svg>"
    )
    result = runner.invoke(
        app, ["--item", "plaque-a5", "--line", "Hi", "--artwork", logo.as_uri(), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["strokes"] >= 2


def test_text_that_does_not_fit_is_one_line_on_stderr() -> None:
    result = runner.invoke(
        app, ["--item", "trophy-plate", "--line", "The Annual Riverside Championship Cup"]
    )
    assert result.exit_code == 1
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "does not fit" in err[0]
    assert "Traceback" not in result.output


def test_usage_errors() -> None:
    assert runner.invoke(app, ["--line", "x"]).exit_code == 2
    assert runner.invoke(app, ["--item", "plaque-a5"]).exit_code == 2
    assert runner.invoke(app, ["--area", "big", "--line", "x"]).exit_code == 2
    assert runner.invoke(app, ["--item", "nope", "--line", "x"]).exit_code == 1
    typo = runner.invoke(app, ["--item", "plaque-a5", "--line", "x", "--material", "brasss"])
    assert typo.exit_code == 2 and "brass" in typo.stderr
    missing = runner.invoke(app, ["--item", "plaque-a5", "--line", "caf\u00e9"])
    assert missing.exit_code == 1 and "U+00E9" in missing.stderr
    bad_art = runner.invoke(
        app, ["--item", "plaque-a5", "--line", "x", "--artwork", "http://example.com/a.svg"]
    )
    assert bad_art.exit_code == 1 and "artwork" in bad_art.stderr
