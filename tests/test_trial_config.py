"""A trial's config built from one Hydra composition per searched-group choice equals a full composition of
its overrides (what `make train ARGS="<its overrides>"` gives)."""

import pytest
from omegaconf import OmegaConf

from sweep.config import ConfigError, load_config, load_trial_config
from sweep.search.space import trial_overrides


@pytest.mark.parametrize(
    "params",
    [
        {"weighting.alpha": 0.37, "loss.posthoc_tau": 1.25},
        {"loss": "logit_adjusted", "loss.tau": 0.8, "weighting.alpha": 0.0},
        {"weighting": "effective_number", "weighting.beta": 0.99},
        {"model.head.l2": 1e-4, "seed": 3},
    ],
)
def test_the_same_config_as_a_full_composition(synthetic, params):
    full = load_config(trial_overrides(synthetic, params))
    fast = load_trial_config(synthetic, params)
    assert OmegaConf.to_container(fast, resolve=True) == OmegaConf.to_container(full, resolve=True)


def test_a_bad_value_is_still_refused(synthetic):
    with pytest.raises(ConfigError, match="weighting.alpha"):
        load_trial_config(synthetic, {"weighting.alpha": 7.0})
    load_trial_config(synthetic, {"weighting.alpha": 0.5})  # the cached composition is untouched
    assert load_trial_config(synthetic, {"loss.posthoc_tau": 0.1}).weighting.alpha == 0.0
