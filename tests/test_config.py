import pytest

from sweep.config import CONF_DIR, ConfigError, load_config

GROUPS = ["data", "model", "weighting", "loss", "sweep", "tracking", "paths"]
REQUIRED = {
    "data=cfpb_csv": ["data.path=/tmp/x.csv"],
    "data=hf": ["data.dataset=some/dataset"],
    "model=precomputed": ["model.path=/tmp/x.npy"],
    "model=precomputed_logits": ["model.path=/tmp/x.parquet"],
}


@pytest.mark.parametrize("option", [f"{g}={p.stem}" for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))])
def test_every_option_of_every_group_composes_and_validates(option, tmp_path):
    cfg = load_config([f"paths.root={tmp_path}", option, *REQUIRED.get(option, [])])
    group, name = option.split("=")
    assert cfg[group] is not None
    assert str(tmp_path) in cfg.tracking.tracking_uri


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=nope"], "Could not find 'model/nope'.*available: .*tfidf_linear"),
        (["weighting.alpha=3"], r"weighting.alpha=3.0 is outside the allowed range \[0.0, 2.0\]"),
        (["weighting.alpha=-0.5"], "outside the allowed range"),
        (["loss=logit_adjusted", "loss.tau=9"], r"loss.tau=9.0 is outside"),
        (["loss.posthoc_tau=-1"], "loss.posthoc_tau"),
        (["sweep.sampler=cmaes"], "sweep.sampler='cmaes' is unknown: use one of tpe, nsga2, random"),
        (["data=hf"], "required config value.*data.dataset"),
        (["nonexistent_key=1"], "Could not override 'nonexistent_key'"),
        (["weighting.alpha=abc"], "not a number"),
        (["weighting.alpha=[0.1"], "bad override"),
    ],
)
def test_bad_config_values_are_one_line_errors(overrides, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as info:
        load_config([f"paths.root={tmp_path}", *overrides])
    assert "\n" not in str(info.value)


def test_help_lists_the_commands_and_exits_zero(capsys):
    from sweep.cli import COMMANDS, main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {c} " in out for c in COMMANDS if c != "data") and "sweep.cv_folds" in out
    assert main(["nope"]) == 2
    assert "--help" in capsys.readouterr().err
