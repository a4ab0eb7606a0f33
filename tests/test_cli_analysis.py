"""``hybridhh compare`` and ``report`` (hybridhh.cli.analysis): every warning of the
comparison reaches stderr, also under --quiet and --json. The commands on real run
directories are tested in tests/test_report.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hybridhh.cli import analysis, main

WARNING = "run R is unfinished: showing the best checkpoint so far"


@dataclass
class FakeComparison:
    out_dir: Path
    metrics: dict = field(default_factory=lambda: {"elapsed": 0.5, "warnings": [WARNING]})
    figures: dict = field(default_factory=dict)

    def summary_lines(self):
        return ["kinetics: ...", *(f"warning: {w}" for w in self.metrics["warnings"])]


@pytest.fixture
def fake_api(monkeypatch, tmp_path):
    calls = {}

    def compare(run_dir, truth, out, **options):
        calls["compare"] = (run_dir, truth, out, options)
        return FakeComparison(tmp_path / "c")

    def write_report(run_dir, truth, out, **options):
        calls["report"] = (run_dir, truth, out, options)
        shown = Path(run_dir) / "compare" / "compare.json"
        shown.parent.mkdir(parents=True)
        shown.write_text(json.dumps({"warnings": [WARNING, "another"]}))
        return tmp_path / "r.html"

    monkeypatch.setattr(analysis, "_analysis", lambda: (compare, write_report, 5.0,
                                                        "compare", "compare.json"))
    return calls


@pytest.mark.parametrize("options", [[], ["-q"], ["--json"], ["--json", "-q"]])
def test_compare_prints_every_warning_once(fake_api, tmp_path, capsys, options):
    assert main(["compare", str(tmp_path / "run"), "--truth", "hh_modern", *options]) == 0
    out, err = capsys.readouterr()
    assert err.count(f"warning: {WARNING}\n") == 1
    if "--json" in options:
        assert json.loads(out)["warnings"] == [WARNING]
    else:
        assert out.strip() == str(tmp_path / "c")
    run_dir, truth, _, kw = fake_api["compare"]
    assert run_dir == tmp_path / "run" and truth == "hh_modern"
    assert kw["method"] == "rk4" and kw["max_shift"] == 5.0 and kw["figures"]


def test_report_prints_the_warnings_of_the_comparison_it_shows(fake_api, tmp_path, capsys):
    assert main(["report", str(tmp_path / "run"), "--max-shift", "2", "-q"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "r.html")
    assert err == f"warning: {WARNING}\nwarning: another\n"
    assert fake_api["report"][3]["max_shift"] == 2.0 and fake_api["report"][3]["reuse"]
