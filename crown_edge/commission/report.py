"""The commissioning report a workshop keeps as its acceptance record: JSON and a summary.

Files are named after the workshop and the time (UTC), e.g.
``commissioning-shop-1-20261201T0730Z.json`` and ``….txt``, and are private to the user who ran
it (``0600``, like the store: :mod:`crown_edge.store.files`): a report names ports, devices and
the workshop's machine settings.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crown_edge.commission.judge import Check
from crown_edge.store.files import private_dir, private_file

REPORT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Report:
    """One run over a workshop's machines."""

    shop: str
    kind: str
    """``commissioning`` (full) or ``doctor`` (short form)."""
    started_at: float
    finished_at: float
    checks: tuple[Check, ...]
    source: str = ""
    """Where the machines came from: the edge config or the rig's target file."""

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    @property
    def machines(self) -> list[str]:
        """Machine ids in report order."""
        return list(dict.fromkeys(c.machine for c in self.checks))

    def to_dict(self) -> dict[str, Any]:
        """The JSON document."""
        return {
            "report": self.kind,
            "version": REPORT_VERSION,
            "shop": self.shop,
            "source": self.source,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "ok": self.ok,
            "machines": {
                m: all(c.ok for c in self.checks if c.machine == m) for m in self.machines
            },
            "checks": [c.to_dict() for c in self.checks],
        }

    def summary(self) -> str:
        """The readable summary: a verdict per machine, then one line per check (80 columns)."""
        head = [
            f"crown-edge {self.kind} report: workshop {self.shop}",
            f"run {_iso(self.started_at)} .. {_iso(self.finished_at)}",
        ]
        if self.source:
            head.append(f"machines from {self.source}")
        passed = sum(c.ok for c in self.checks)
        head.append(
            f"verdict: {'ACCEPTED' if self.ok else 'NOT ACCEPTED'} "
            f"({passed}/{len(self.checks)} checks passed)"
        )
        body: list[str] = []
        for machine in self.machines:
            mine = [c for c in self.checks if c.machine == machine]
            verdict = "ok" if all(c.ok for c in mine) else "FAIL"
            body += ["", f"machine {machine}: {verdict}"]
            pad = max(len(c.check) for c in mine)
            for c in mine:
                lead = f"  {'ok  ' if c.ok else 'FAIL'} {c.check:<{pad}} "
                body.append(
                    textwrap.fill(
                        c.detail,
                        80,
                        initial_indent=lead,
                        subsequent_indent=" " * 7,
                        break_on_hyphens=False,
                        break_long_words=True,
                    )
                )
        return "\n".join(head + body) + "\n"


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def report_stem(report: Report) -> str:
    """``{kind}-{shop}-{YYYYMMDDTHHMMZ}``: sorts by date, names the workshop."""
    shop = re.sub(r"[^A-Za-z0-9._-]", "_", report.shop) or "shop"
    stamp = datetime.fromtimestamp(report.started_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{report.kind}-{shop}-{stamp}"


def write_report(report: Report, directory: Path) -> tuple[Path, Path]:
    """Write ``{stem}.json`` and ``{stem}.txt`` (0600) in ``directory`` (created 0700)."""
    private_dir(directory)
    stem = report_stem(report)
    json_path, text_path = directory / f"{stem}.json", directory / f"{stem}.txt"
    for path, text in (
        (json_path, json.dumps(report.to_dict(), indent=2, sort_keys=False) + "\n"),
        (text_path, report.summary()),
    ):
        private_file(path)
        path.write_text(text, "utf-8")
    return json_path, text_path


def rows(checks: Sequence[Check]) -> list[dict[str, Any]]:
    """Doctor rows: ``{"check", "ok", "detail"}`` plus ``machine``, ``step`` and ``figures``."""
    return [
        {
            "check": f"{c.machine} {c.check}",
            "ok": c.ok,
            "detail": c.detail,
            "machine": c.machine,
            "step": c.check,
            "figures": dict(c.figures),
        }
        for c in checks
    ]
