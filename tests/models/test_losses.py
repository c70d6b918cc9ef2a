import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sweep.models.losses import LossSpec, class_weights, log_prior, posthoc_predict

COUNTS = np.array([100, 25, 4])


def test_power_weights_follow_the_formula_and_mean_one_per_example():
    for alpha in (0.0, 0.5, 1.0):
        w = class_weights(COUNTS, "power", alpha)
        raw = (100 / COUNTS) ** alpha
        np.testing.assert_allclose(w / w[0], raw / raw[0])
        assert (w * COUNTS).sum() / COUNTS.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(class_weights(COUNTS, "power", 0.0), 1.0)
    w = class_weights(COUNTS, "power", 1.0)
    assert w[2] / w[0] == pytest.approx(25.0)  # inverse frequency


def test_effective_number_weights():
    beta = 0.9
    w = class_weights(COUNTS, "effective_number", beta=beta)
    raw = (1 - beta) / (1 - beta**COUNTS)
    np.testing.assert_allclose(w / w[0], raw / raw[0])
    assert (w * COUNTS).sum() == pytest.approx(COUNTS.sum())


@pytest.mark.parametrize(
    "bad",
    [
        dict(scheme="power", alpha=-0.1),
        dict(scheme="power", alpha=3.0),
        dict(scheme="effective_number", beta=1.0),
        dict(scheme="nope"),
    ],
)
def test_bad_weighting_values_raise(bad):
    with pytest.raises(ValueError, match="weighting|unknown"):
        class_weights(COUNTS, **bad)


def test_logit_adjusted_loss_matches_a_hand_computation():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    y = np.array([0, 2])
    tau = 1.5
    weights = class_weights(COUNTS, "power", 0.5)
    lp = log_prior(COUNTS)
    expected = 0.0
    for z, label in zip(logits, y, strict=True):
        adj = z + tau * lp
        expected += weights[label] * -(adj[label] - np.log(np.exp(adj).sum()))
    expected /= len(y)
    got = LossSpec(weights, lp, tau)(torch.tensor(logits), torch.tensor(y))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_plain_ce_is_the_special_case_tau_zero_uniform_weights():
    logits, y = torch.randn(16, 5), torch.randint(0, 5, (16,))
    spec = LossSpec(np.ones(5), np.log(np.full(5, 0.2)), 0.0)
    assert spec(logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)


def test_posthoc_adjustment_moves_predictions_to_rare_classes():
    lp = log_prior(np.array([90, 10]))
    logits = np.array([[1.0, 0.0]])  # head class wins by 1 nat
    assert posthoc_predict(logits, lp, 0.0)[0] == 0
    # log(0.9) - log(0.1) = 2.197 > 1: with tau = 1 the rare class wins
    assert posthoc_predict(logits, lp, 1.0)[0] == 1
    assert posthoc_predict(logits, lp, 0.4)[0] == 0  # 0.4 * 2.197 = 0.88 < 1
