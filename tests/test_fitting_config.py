"""The fit configuration checks itself: every bad value fails when the config is made,
naming the field, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hybridhh.errors import ConfigError
from hybridhh.fitting.config import (
    DenoiseConfig,
    FitConfig,
    ODEConfig,
    PriorConfig,
    TeacherConfig,
    parse_assignments,
)
from hybridhh.fitting.ode import METHODS
from hybridhh.fitting.trainer import OPTIMIZERS

# (config class, section name, field, bad value, what the message says is allowed)
BAD = [
    (PriorConfig, "prior", "slope", 0.0, "a number > 0"),
    (PriorConfig, "prior", "tau_max", -1.0, "a number > 0"),
    (PriorConfig, "prior", "offset_activation", "15", "a number"),
    (PriorConfig, "prior", "offset_inactivation", float("nan"), "a number"),
    (PriorConfig, "prior", "refine_starts", -1, "an integer >= 0"),
    (PriorConfig, "prior", "refine_starts", 2.5, "an integer >= 0"),
    (PriorConfig, "prior", "refine_iter", True, "an integer >= 0"),
    (PriorConfig, "prior", "refine_dt", -0.1, "a number >= 0"),
    (TeacherConfig, "teacher", "starts", 0, "an integer >= 1"),
    (TeacherConfig, "teacher", "start_kinds", ("refined", "best"), '"refined" and "generic"'),
    (TeacherConfig, "teacher", "start_kinds", (), '"refined" and "generic"'),
    (TeacherConfig, "teacher", "start_kinds", "generic", '"refined" and "generic"'),
    (TeacherConfig, "teacher", "start_gn", -1, "an integer >= 0"),
    (TeacherConfig, "teacher", "max_starts", 0, "an integer >= 1"),
    (TeacherConfig, "teacher", "adam_steps", -1, "an integer >= 0"),
    (TeacherConfig, "teacher", "adam_steps", "300", "an integer >= 0"),
    (TeacherConfig, "teacher", "adam_lr", 0.0, "a number > 0"),
    (TeacherConfig, "teacher", "adam_dt", -1.0, "a number >= 0"),
    (TeacherConfig, "teacher", "robust", 0.0, "or None"),
    (TeacherConfig, "teacher", "gauss_newton", ((0.04, -1),), "(step ms >= 0"),
    (TeacherConfig, "teacher", "gauss_newton", ((0.04,),), "(step ms >= 0"),
    (TeacherConfig, "teacher", "gauss_newton", 40, "a sequence"),
    (TeacherConfig, "teacher", "gn_node_step", 0.0, "a number > 0"),
    (TeacherConfig, "teacher", "gn_smoothness", -1e-4, "a number >= 0"),
    (TeacherConfig, "teacher", "adaptive", -1.0, "or None"),
    (TeacherConfig, "teacher", "gn_geodesic", 0.0, "or None"),
    (TeacherConfig, "teacher", "distill_iter", 0, "an integer >= 1"),
    (TeacherConfig, "teacher", "lbfgs", ((-0.04, 12),), "(step ms >= 0"),
    (TeacherConfig, "teacher", "lbfgs", ((0.04, 1.5),), "(step ms >= 0"),
    (TeacherConfig, "teacher", "lbfgs_max_iter", 0, "an integer >= 1"),
    (TeacherConfig, "teacher", "lbfgs_history", 0, "an integer >= 1"),
    (TeacherConfig, "teacher", "lbfgs_restart", -1, "an integer >= 0"),
    (TeacherConfig, "teacher", "window", 0, "an integer >= 1"),
    (DenoiseConfig, "denoise", "threshold", -0.1, "or None"),
    (DenoiseConfig, "denoise", "q", 0.0, "a number > 0"),
    (DenoiseConfig, "denoise", "q_gate", -1e-4, "a number > 0"),
    (DenoiseConfig, "denoise", "iterations", -1, "an integer >= 0"),
    (DenoiseConfig, "denoise", "smoothness", "x", "a number >= 0"),
    (ODEConfig, "ode", "enabled", 1, "true or false"),
    (ODEConfig, "ode", "windows", (0.0,), "window lengths > 0"),
    (ODEConfig, "ode", "windows", 1.5, "a sequence"),
    (ODEConfig, "ode", "steps", -1, "an integer >= 0"),
    (ODEConfig, "ode", "optimizer", "sgd", "one of 'adam', 'lbfgs'"),
    (ODEConfig, "ode", "lr", -1.0, "a number > 0"),
    (ODEConfig, "ode", "max_iter", 0, "an integer >= 1"),
    (ODEConfig, "ode", "max_windows", 0, "an integer >= 1"),
    (ODEConfig, "ode", "method", "exp_euler", "one of 'rk4'"),
    (ODEConfig, "ode", "dt", 0.0, "a number > 0"),
    (FitConfig, "", "seed", 1.5, "an integer"),
    (FitConfig, "", "width", 0, "an integer >= 1"),
    (FitConfig, "", "parametrisation", "tau_inf", "one of 'inf_tau', 'alpha_beta'"),
    (FitConfig, "", "input_gain", 0.0, "a number > 0"),
    (FitConfig, "", "separate", "yes", "true or false"),
    (FitConfig, "", "holdout", 1.5, '"auto", None, a trace name or index'),
    (FitConfig, "", "holdout", ("a", 1.5), '"auto", None, a trace name or index'),
    (FitConfig, "", "threads", 0, "an integer >= 1 or None"),
    (FitConfig, "", "checkpoint_every", 0, "an integer >= 1"),
]


@pytest.mark.parametrize("cls, section, name, value, allowed", BAD,
                         ids=[f"{s or 'fit'}.{n}={v!r}" for _, s, n, v, _ in BAD])
def test_a_bad_value_names_its_field_value_and_what_is_allowed(cls, section, name, value,
                                                               allowed):
    where = f"{section}.{name}" if section else name
    with pytest.raises(ConfigError) as e:
        cls(**{name: value})
    msg = str(e.value)
    assert msg.startswith(f"{where} must be ")
    assert allowed in msg
    assert "got" in msg


def test_messages_read_as_documented():
    with pytest.raises(ConfigError) as e:
        TeacherConfig(adam_steps=-1)
    assert str(e.value) == "teacher.adam_steps must be an integer >= 0, got -1"
    with pytest.raises(ConfigError) as e:
        ODEConfig(dt=-0.04)
    assert str(e.value) == "ode.dt must be a number > 0 (ms), got -0.04"


def test_cross_field_and_section_type_checks():
    with pytest.raises(ConfigError, match=r"teacher.adaptive needs teacher.window == 1"):
        TeacherConfig(window=2)
    assert TeacherConfig(window=2, adaptive=None).window == 2
    with pytest.raises(ConfigError, match=r"^teacher must be a TeacherConfig"):
        FitConfig(teacher={"adam_steps": 3})
    with pytest.raises(ConfigError, match=r"^ode must be an ODEConfig"):
        FitConfig(ode=PriorConfig())


def test_the_tables_are_the_real_ones():
    """ODEConfig accepts exactly the optimisers the trainer makes and the integrators the
    neural-ODE stage runs."""
    for kind in OPTIMIZERS:
        assert ODEConfig(optimizer=kind).optimizer == kind
    for method in METHODS:
        assert ODEConfig(method=method).method == method
    assert "rk4" in METHODS and "dopri5" in METHODS


def test_from_dict_fails_at_construction_on_a_bad_optimizer():
    d = FitConfig().to_dict()
    d["ode"]["optimizer"] = "sgd"
    with pytest.raises(ConfigError, match=r"^ode.optimizer must be one of 'adam', 'lbfgs', "
                                          r"got 'sgd'$"):
        FitConfig.from_dict(d)
    with pytest.raises(ConfigError, match="ode.optimizer"):
        FitConfig().updated(parse_assignments(["ode.optimizer=sgd"]))
    with pytest.raises(ConfigError, match="unknown ode config fields"):
        FitConfig.from_dict({"ode": {"optimiser": "adam"}})


@pytest.mark.parametrize("cfg", [FitConfig(), FitConfig.quick(seed=3)])
def test_configs_are_frozen(cfg):
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.teacher.adam_steps = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.ode.windows = (3.0,)
    changed = cfg.updated({"teacher": {"adam_steps": 7}})
    assert changed.teacher.adam_steps == 7 and cfg.teacher.adam_steps != 7
    assert dataclasses.replace(cfg.prior, refine_starts=0).refine_starts == 0
    hash(cfg)  # frozen and made of tuples: usable as a key


def test_to_dict_from_dict_round_trip_through_json():
    cfg = FitConfig.quick(seed=4, holdout=("step_3", 1)).updated(
        {"teacher": {"lbfgs": [[0.05, 3], [0.0, 2]]}, "ode": {"windows": [1.0, 2.0]}})
    assert cfg.teacher.lbfgs == ((0.05, 3), (0.0, 2))  # lists become tuples
    assert cfg.ode.windows == (1.0, 2.0)
    assert cfg.holdout == ("step_3", 1)
    back = FitConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert back.to_dict() == cfg.to_dict()
    assert FitConfig.from_dict(FitConfig().to_dict()) == FitConfig()


def test_defaults_are_unchanged():
    """The defaults the README's benchmark numbers were measured with."""
    d = FitConfig().to_dict()
    assert d["prior"] == {"offset_activation": 15.0, "offset_inactivation": 0.0, "slope": 8.0,
                          "tau_max": 3.0, "refine_starts": 12, "refine_dt": 0.16,
                          "refine_iter": 60}
    assert d["teacher"] == {"starts": 2, "start_kinds": ("refined", "generic"), "start_gn": 8,
                            "max_starts": 6, "adam_steps": 300, "adam_lr": 3e-3, "adam_dt": 0.08,
                            "robust": 1.0, "gauss_newton": ((0.04, 40),), "gn_node_step": 3.0,
                            "gn_smoothness": 1e-4, "adaptive": 1.0, "gn_geodesic": 0.75,
                            "distill_iter": 600, "lbfgs": ((0.04, 12), (0.04, 24)),
                            "lbfgs_max_iter": 10, "lbfgs_history": 50, "lbfgs_restart": 0,
                            "window": 1}
    assert d["denoise"] == {"threshold": 0.1, "q": 0.03, "q_gate": 1e-4, "iterations": 30,
                            "smoothness": 0.01}
    assert d["ode"] == {"enabled": True, "windows": (1.5,), "steps": 12, "optimizer": "lbfgs",
                        "lr": 1.0, "max_iter": 5, "max_windows": 1024, "method": "rk4",
                        "dt": 0.04}
    assert {k: d[k] for k in ("seed", "width", "parametrisation", "input_gain", "separate",
                              "holdout", "threads", "checkpoint_every")} == {
        "seed": 0, "width": 32, "parametrisation": "inf_tau", "input_gain": 3.0,
        "separate": True, "holdout": "auto", "threads": None, "checkpoint_every": 20}


def test_parse_assignments():
    assert parse_assignments(["teacher.adam_steps=300", "seed=1", "ode.method=rk4"]) == {
        "teacher": {"adam_steps": 300}, "seed": 1, "ode": {"method": "rk4"}}
    with pytest.raises(ConfigError, match="expected FIELD=VALUE"):
        parse_assignments(["seed"])
