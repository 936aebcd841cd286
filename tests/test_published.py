"""Every published result regenerates its committed report byte for byte from its results.json alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from taskarith.report import write_report

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "results"
RUNS = sorted(p.name for p in PUBLISHED.iterdir() if (p / "results.json").is_file()) if PUBLISHED.is_dir() else []


def test_text8_is_published():
    assert "text8" in RUNS


@pytest.mark.parametrize("name", RUNS)
def test_published_report_regenerates_byte_for_byte(tmp_path, name):
    shutil.copy(PUBLISHED / name / "results.json", tmp_path / "results.json")
    write_report(tmp_path)
    assert (tmp_path / "report.md").read_bytes() == (PUBLISHED / name / "report.md").read_bytes()
    committed = {p.name for p in (PUBLISHED / name / "figures").glob("*.png")}
    assert committed == {p.name for p in (tmp_path / "figures").glob("*.png")}
