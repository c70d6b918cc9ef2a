"""The deployment class mix: deploy_prior=uniform / train / a CSV read and checked (one-line errors, warnings for
what is fixed), and the adjustment for it: the post-hoc rule against log pi_train - log pi_deploy."""

import logging

import numpy as np
import pytest

from sweep.config import ConfigError
from sweep.models.losses import log_prior, posthoc_predict
from sweep.report.deploy import deploy_mix

NAMES = ["Debt collection", "Mortgage", "Student loan"]
COUNTS = np.array([600, 300, 100])


def test_uniform_and_train_mixes():
    share, name = deploy_mix("uniform", NAMES, COUNTS)
    assert share == pytest.approx([1 / 3] * 3) and name == "uniform"
    share, name = deploy_mix("train", NAMES, COUNTS)
    assert share == pytest.approx([0.6, 0.3, 0.1]) and name == "training split's"


def test_a_csv_mix_is_checked_normalized_and_completed_with_warnings(tmp_path, caplog):
    path = tmp_path / "mix.csv"
    path.write_text("class,share\nDebt collection,2\nMortgage,2\n")
    with caplog.at_level(logging.WARNING):
        share, name = deploy_mix(str(path), NAMES, COUNTS)
    assert share == pytest.approx([0.5, 0.5, 0.0]) and name == "mix.csv"
    said = caplog.text
    assert "lacks 1 class(es), given share 0: Student loan" in said and "sum to 4, not 1: normalized" in said


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("class,share\nDebt collection,0.5\nCredit card,0.5\n", "class 'Credit card' is not a class of this study"),
        ("class,share\nMortgage,0.5\nMortgage,0.5\n", "class 'Mortgage' has two rows"),
        ("class,share\nMortgage,-0.1\nStudent loan,1\n", "the share of class 'Mortgage' is not a number >= 0"),
        ("class,share\nMortgage,lots\n", "the share of class 'Mortgage' is not a number >= 0"),
        ("label,weight\nMortgage,1\n", "has columns ['label', 'weight']: it needs class,share"),
        ("class,share\nMortgage,0\n", "the shares sum to 0"),
    ],
)
def test_a_bad_csv_mix_is_a_one_line_error_naming_what_is_wrong(tmp_path, text, says):
    path = tmp_path / "mix.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        deploy_mix(str(path), NAMES, COUNTS)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_mix_says_what_is_allowed():
    with pytest.raises(ConfigError, match="neither uniform, train nor a CSV file: give deploy_prior=uniform"):
        deploy_mix("balanced", NAMES, COUNTS)


def test_the_adjustment_for_a_mix_is_bayes_rule_for_the_shifted_prior():
    """With posteriors that are exactly the training prior times a likelihood, adjusting by log pi_train -
    log pi_deploy gives the argmax of likelihood x deploy prior, computed here directly."""
    rng = np.random.default_rng(0)
    likelihood = rng.dirichlet(np.ones(3), size=500)
    train, deploy = COUNTS / COUNTS.sum(), np.array([0.2, 0.3, 0.5])
    logits = np.log(likelihood * train)  # log p_train(y | x) up to a constant per row
    got = posthoc_predict(logits, log_prior(COUNTS) - np.log(deploy), 1.0)
    assert (got == np.argmax(likelihood * deploy, axis=1)).all()
    with np.errstate(divide="ignore"):  # a class the mix never shows is never predicted
        never = posthoc_predict(logits, log_prior(COUNTS) - np.log([0.5, 0.5, 0.0]), 1.0)
    assert 2 not in never
