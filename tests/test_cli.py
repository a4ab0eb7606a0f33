"""The command line as a whole (hybridhh.cli): registry, parser, errors, entry points, docs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hybridhh import cli
from hybridhh.cli import main
from hybridhh.cli.docs import REGENERATE, markdown_reference

ROOT = Path(__file__).resolve().parents[1]


def error_line(capsys, argv) -> str:
    """Run ``main(argv)``, check for exit status 2 and one ``error:`` line; return it."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, words", [
    ([], "choose a command"),
    (["frobnicate"], "invalid choice"),
    (["plot"], "required: file"),
    (["info", "missing.h5"], "missing.h5: no such file"),
])
def test_bad_arguments_give_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    assert words in error_line(capsys, argv)


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("simulate", "info", "plot", "import-abf", "fit", "rates", "compare", "report"):
        assert name in out
    assert main(["simulate", "--help"]) == 0
    assert "--stimulus-from" in capsys.readouterr().out


def test_registration_table():
    assert list(cli.COMMANDS) == ["simulate", "info", "plot", "import", "import-abf", "passive",
                                  "fit", "rates", "compare", "report", "predict", "export"]
    with pytest.raises(ValueError, match="twice"):
        cli.command("info", "again")(lambda args: 0)


def test_options_are_added_only_to_the_chosen_command():
    parser = cli.build_parser()
    args = parser.parse_args(["info", "x.h5", "--json"])
    assert args.file == Path("x.h5") and args.json and args._command.name == "info"
    subs = cli._registry.subparsers(parser)
    assert subs["info"].get_default("_complete") and not subs["fit"].get_default("_complete")
    assert all(p.get_default("_complete")
               for p in cli._registry.subparsers(cli.build_parser(complete=True)).values())


_NO_TORCH = """
import sys
from hybridhh.cli import main
for argv in (["--help"], ["simulate", "--help"], ["info", "--help"]):
    assert main(argv) == 0
assert "torch" not in sys.modules, "torch imported"
"""


def test_help_imports_no_torch():
    r = subprocess.run([sys.executable, "-c", _NO_TORCH], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("module", ["hybridhh.cli", "hybridhh"])
def test_real_entry_point_has_no_traceback(tmp_path, module):
    """``python -m hybridhh[.cli]`` (the console script's path): one line, exit status 2."""
    r = subprocess.run([sys.executable, "-m", module, "info", str(tmp_path / "no.h5")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error:") and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1


def test_docs_cli_md_is_generated_from_the_parser():
    text = markdown_reference()
    assert REGENERATE in text.splitlines()[2]
    for name in cli.COMMANDS:
        assert f"## `hybridhh {name}`" in text
    for option in ("--stimulus-from", "--v-init", "--set FIELD=VALUE", "--adam-steps",
                   "[teacher.adam_steps]", "--traceback"):
        assert option in text, option
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == text, f"docs/cli.md is out of date: run {REGENERATE}"
