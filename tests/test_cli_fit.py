"""``hybridhh fit`` and ``rates`` (hybridhh.cli.fit): options -> FitConfig, errors first."""

from __future__ import annotations

import json

import pytest
from test_cli import error_line

from hybridhh.cli import build_parser, main
from hybridhh.cli.fit import CONFIG_FLAGS, config_from_args
from hybridhh.fitting import FitConfig


def _config(tmp_path, *options):
    data = tmp_path / "rec.h5"
    data.write_bytes(b"")  # only its existence is checked here
    args = build_parser().parse_args(["fit", str(data), "-o", str(tmp_path / "run"),
                                      *options])
    return config_from_args(args)


def _field(cfg, path):
    value = cfg
    for name in path.split("."):
        value = getattr(value, name)
    return value


# one value per option, and what the field holds then (defaults: FitConfig())
FLAG_VALUES = {
    "--seed": (["3"], 3),
    "--width": (["8"], 8),
    "--parametrisation": (["alpha_beta"], "alpha_beta"),
    "--prior-starts": (["0"], 0),
    "--adam-steps": (["7"], 7),
    "--lbfgs-steps": (["3", "4"], ((0.04, 3), (0.04, 4))),
    "--gn-steps": (["5"], ((0.04, 5),)),
    "--denoise-iter": (["2"], 2),
    "--ode-steps": (["4"], 4),
    "--holdout": (["step_5", "1"], ("step_5", "1")),
    "--threads": (["2"], 2),
    "--free": (["g_Na", "E_L"], ("g_Na", "E_L")),
}


def test_every_config_option_sets_its_field(tmp_path):
    default = FitConfig()
    assert set(FLAG_VALUES) == {f.option for f in CONFIG_FLAGS}
    for flag in CONFIG_FLAGS:
        given, expected = FLAG_VALUES[flag.option]
        assert _field(default, flag.field) != expected, flag.option
        cfg = _config(tmp_path, flag.option, *given)
        assert _field(cfg, flag.field) == expected, flag.option
        assert cfg.updated({}) == cfg
        # every other field keeps its default
        changed = {k for k, v in cfg.to_dict().items() if v != default.to_dict()[k]}
        assert changed == {flag.field.split(".")[0]}, flag.option


def test_special_options(tmp_path):
    cfg = _config(tmp_path, "--gn-steps", "0", "--ode-steps", "0", "--holdout")
    assert cfg.teacher.gauss_newton == () and cfg.holdout == ()
    assert cfg.ode.steps == 0 and not cfg.ode.enabled


def test_set_overrides_the_options_and_the_config_file(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(FitConfig().updated({"seed": 5, "width": 12}).to_dict()))
    cfg = _config(tmp_path, "--config", str(base), "--adam-steps", "5",
                  "--set", "teacher.adam_steps=9", "--set", "ode.windows=[1.0, 2.0]",
                  "--set", "ode.method=rk4", "--set", "denoise.threshold=null")
    assert cfg.teacher.adam_steps == 9 and cfg.ode.windows == (1.0, 2.0)
    assert cfg.ode.method == "rk4" and cfg.denoise.threshold is None
    assert cfg.seed == 5 and cfg.width == 12  # from the file; no option changed them
    assert _config(tmp_path, "--config", str(base), "--seed", "2").seed == 2


def test_fit_help_states_the_defaults_of_fitconfig(capsys):
    d = FitConfig()
    assert main(["fit", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in (f"Adam steps (default {d.teacher.adam_steps})", "[teacher.adam_steps]",
                 f"(default {d.ode.steps};", f"(default {d.width})", "--set FIELD=VALUE",
                 "teacher.NAME"):
        assert text in out, text


@pytest.mark.parametrize("options, words", [
    (["--set", "teacher.adam_steps=-1"], "adam_steps"),
    (["--set", "width=0"], "width"),
    (["--set", "ode.optimizer=sgd"], "ode.optimizer"),
    (["--set", "nonsense=1"], "nonsense"),
    (["--set", "teacher.nonsense=1"], "nonsense"),
    (["--set", "adam_steps"], "expected FIELD=VALUE"),
    (["--adam-steps", "-1"], "--adam-steps"),
    (["--width", "0"], "--width"),
    (["--gn-steps", "1", "2"], "--gn-steps needs 1 counts"),
    (["--lbfgs-steps", "1"], "--lbfgs-steps needs 2 counts"),
    (["--parametrisation", "tanh"], "invalid choice"),
])
def test_a_bad_value_fails_before_the_data_are_read(capsys, tmp_path, options, words):
    junk = tmp_path / "junk.h5"
    junk.write_text("not a recording")  # reading it would fail with another message
    err = error_line(capsys, ["fit", str(junk), "-o", str(tmp_path / "run"), *options])
    assert words in err and "junk.h5" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content, words", [
    ({"width": 0}, "width"),
    ({"ode": {"optimizer": "sgd"}}, "ode.optimizer"),
    ({"teacher": {"adam_steps": -3}}, "adam_steps"),
    ({"frobnicate": 1}, "frobnicate"),
    ("[1, 2]", "not a valid FitConfig JSON"),
    ("{", "not a valid FitConfig JSON"),
])
def test_a_bad_config_file_fails_before_the_data_are_read(capsys, tmp_path, content, words):
    junk = tmp_path / "junk.h5"
    junk.write_text("not a recording")
    bad = tmp_path / "bad.json"
    bad.write_text(content if isinstance(content, str) else json.dumps(content))
    err = error_line(capsys, ["fit", str(junk), "-o", str(tmp_path / "run"),
                              "--config", str(bad)])
    assert words in err and "bad.json" in err and "junk.h5" not in err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def tiny_run(tiny_recording, tmp_path_factory):
    """A finished tiny fit (seconds: a few steps of each teacher-forcing phase, no ODE)."""
    from hybridhh.recording import write_recording

    root = tmp_path_factory.mktemp("fit")
    data = write_recording(root / "rec.h5", tiny_recording.select([1, 4]))
    assert main(["fit", str(data), "-o", str(root / "run"), "--adam-steps", "5",
                 "--lbfgs-steps", "1", "1", "--gn-steps", "0", "--ode-steps", "0",
                 "--prior-starts", "0", "--set", "teacher.starts=1", "--holdout",
                 "-q"]) == 0
    return root / "run"


def test_rates_of_an_unfinished_run_use_the_best_checkpoint(tiny_run, tmp_path, capsys):
    import shutil

    from hybridhh.rates_table import read_rates_csv

    assert main(["rates", str(tiny_run), "-o", str(tmp_path / "done.csv")]) == 0
    assert "warning" not in capsys.readouterr().err
    cut = tmp_path / "cut"
    shutil.copytree(tiny_run, cut)
    for name in ("model.pt", "result.json"):  # as if interrupted before the end
        (cut / name).unlink()
    assert (cut / "checkpoint_best.pt").is_file()
    assert main(["rates", str(cut), "-o", str(tmp_path / "cut.csv"), "-q"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "cut.csv")
    assert err == f"warning: run {cut} is unfinished: showing the best checkpoint so far\n"
    table = read_rates_csv(tmp_path / "cut.csv")
    assert set(table) >= {"V", "alpha_m", "beta_n"} and (table["alpha_m"] > 0).all()
    (cut / "checkpoint_best.pt").unlink()  # nothing left to show
    assert "error: " in error_line(capsys, ["rates", str(cut)])


def test_the_cli_says_when_the_fit_ran_on_an_interpolated_recording(tmp_path, capsys):
    import json

    from hybridhh.cli._args import set_quiet
    from hybridhh.cli.fit import _say_interpolated

    set_quiet(False)
    run = tmp_path / "run"
    run.mkdir()
    for k, said in ((5, True), (1, False)):
        (run / "config.json").write_text(json.dumps(
            {"data": {"dt": 0.05, "interpolated": {"factor": k, "dt": 0.05 / k}}}))
        _say_interpolated(run)
        out = capsys.readouterr().err
        assert ("interpolated to 0.01 ms (x5" in out) is said, out
    (run / "config.json").write_text(json.dumps({"data": {"dt": 0.05}}))  # an older run
    _say_interpolated(run)
    assert capsys.readouterr().err == ""
