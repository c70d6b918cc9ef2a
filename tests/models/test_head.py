"""The linear head's fit: converged to its tolerance, the same optimum from any start, equal to independent
solvers (scikit-learn's LogisticRegression, SciPy's L-BFGS-B on a NumPy objective), and honest when capped."""

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
import torch
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression

from sweep.models.head import CPU_BLOCK, HeadObjective, WarmStarts, fit_head
from sweep.models.losses import LossSpec, class_weights, log_prior
from sweep.models.metrics import evaluate


def problem(n: int = 3000, d: int = 300, c: int = 6, seed: int = 0):
    """Sparse non-negative features (TF-IDF-like), long-tailed labels from a noisy linear model."""
    rng = np.random.default_rng(seed)
    x = sp.random(n, d, density=0.05, random_state=seed, format="csr", dtype=np.float64)
    truth = rng.normal(size=(d, c)) * 3
    prior = np.log(np.geomspace(1.0, 0.05, c))
    logits = x @ truth + prior + rng.gumbel(size=(n, c))
    y = logits.argmax(1)
    return x, y, np.bincount(y, minlength=c)


def numpy_objective(theta, x, y, weights, lp, tau, l2):
    """The objective written again, independently: mean_i w_yi * CE(xW + b + tau log prior) + l2 |W|^2."""
    d, c = x.shape[1], len(weights)
    w, b = theta[: d * c].reshape(d, c), theta[d * c :]
    z = x @ w + b + tau * lp
    logp = z - logsumexp(z, axis=1, keepdims=True)
    n = len(y)
    value = -(weights[y] * logp[np.arange(n), y]).mean() + l2 * (w * w).sum()
    g = np.exp(logp)
    g[np.arange(n), y] -= 1
    g *= weights[y][:, None] / n
    return value, np.concatenate([(x.T @ g + 2 * l2 * w).ravel(), g.sum(0)])


def test_fit_converges_to_its_tolerance_and_reports_it():
    x, y, counts = problem()
    loss = LossSpec(class_weights(counts, "power", 0.5), log_prior(counts), 0.0)
    fit = fit_head(x, y, loss, 1e-4, gtol=1e-7, max_iter=3000)
    assert fit.converged and fit.grad_max <= 1e-7 and 0 < fit.iterations < 3000
    _, grad = numpy_objective(
        np.concatenate([fit.weight.ravel(), fit.bias]), x, y, loss.weights, loss.log_prior, 0.0, 1e-4
    )
    assert np.abs(grad).max() == pytest.approx(fit.grad_max, rel=1e-3, abs=1e-12)  # the gradient it reports


def test_a_capped_fit_is_not_converged():
    x, y, counts = problem()
    loss = LossSpec(class_weights(counts, "power", 1.0), log_prior(counts), 0.0)
    fit = fit_head(x, y, loss, 1e-5, gtol=1e-7, max_iter=3)
    assert fit.iterations <= 3 and not fit.converged and fit.grad_max > 1e-7


def test_warm_and_cold_starts_reach_the_same_optimum():
    x, y, counts = problem(n=4000)
    lp = log_prior(counts)
    warm = WarmStarts()
    for alpha in (0.0, 1.0):  # two solutions known: the next start is on their secant
        loss = LossSpec(class_weights(counts, "power", alpha), lp, 0.0)
        warm.add("p", alpha, loss, fit_head(x, y, loss, 1e-4, gtol=1e-7))
    loss = LossSpec(class_weights(counts, "power", 0.6), lp, 0.5)
    starts = warm.start("p", 0.6, loss)
    assert [label.split(" ")[0] for label, _, _ in starts] == ["degree-1", "nearest"]
    cold = fit_head(x, y, loss, 1e-4, gtol=1e-7)
    hot = fit_head(x, y, loss, 1e-4, gtol=1e-7, starts=starts)
    assert cold.converged and hot.converged and hot.iterations < cold.iterations
    p_cold, p_hot = cold.logits(x).argmax(1), hot.logits(x).argmax(1)
    assert (p_cold == p_hot).mean() >= 0.999
    names = [str(i) for i in range(len(counts))]
    m_cold, m_hot = evaluate(y, p_cold, names)[0], evaluate(y, p_hot, names)[0]
    for k in ("accuracy", "macro_f1"):
        assert round(m_cold[k], 4) == round(m_hot[k], 4)


def test_the_quadratic_prediction_along_the_path_beats_the_nearest_solution():
    x, y, counts = problem(n=4000)
    lp = log_prior(counts)
    fits = {}
    for degree in (0, 2):
        warm = WarmStarts(degree=degree)
        for alpha in (0.0, 0.4, 0.8):
            loss = LossSpec(class_weights(counts, "power", alpha), lp, 0.0)
            warm.add("p", alpha, loss, fit_head(x, y, loss, 1e-4, gtol=1e-7))
        loss = LossSpec(class_weights(counts, "power", 0.6), lp, 0.0)
        fits[degree] = fit_head(x, y, loss, 1e-4, gtol=1e-7, starts=warm.start("p", 0.6, loss))
    assert fits[0].warm_start.startswith("nearest") and fits[2].warm_start.startswith("degree-2")
    assert fits[2].converged and fits[2].iterations < fits[0].iterations
    centred = [f.logits(x) - f.logits(x).mean(1, keepdims=True) for f in (fits[2], fits[0])]  # the bias's flat
    np.testing.assert_allclose(*centred, atol=1e-3)  # direction (a constant on every class) moves no prediction


def test_float32_products_on_float32_features_reach_the_float64_optimum():
    """TF-IDF is float32: the fast products are then exact inputs; the end point is checked in float64."""
    x, y, counts = problem()
    x32 = x.astype(np.float32)
    loss = LossSpec(class_weights(counts, "power", 0.5), log_prior(counts), 0.0)
    fit = fit_head(x32, y, loss, 1e-4, gtol=1e-7)
    value, grad = numpy_objective(
        np.concatenate([fit.weight.ravel(), fit.bias]),
        x32.astype(np.float64),
        y,
        loss.weights,
        loss.log_prior,
        0.0,
        1e-4,
    )
    assert fit.converged and np.abs(grad).max() <= 1e-7
    assert fit.loss == pytest.approx(value, rel=1e-12)


def test_class_blocked_products_give_the_objective_and_gradient_of_the_whole_width():
    """On the CPU the sparse products run in blocks of classes (faster per column): the value and gradient
    are still those of the objective written independently, in both the fast and the exact products."""
    c = 2 * CPU_BLOCK[torch.float32] + 7  # three float32 blocks, five float64 ones
    x, y, counts = problem(n=2000, d=150, c=c)
    x32 = x.astype(np.float32)
    loss = LossSpec(class_weights(counts + 1, "power", 0.5), log_prior(counts + 1), 0.0)
    objective = HeadObjective(x32, y, loss, 1e-4, torch.device("cpu"))
    assert len(objective.blocks[torch.float32]) == 3 and len(objective.blocks[torch.float64]) == 5
    theta = np.random.default_rng(1).normal(size=150 * c + c)
    value, grad = numpy_objective(theta, x32.astype(np.float64), y, loss.weights, loss.log_prior, 0.0, 1e-4)
    for exact, rtol in ((True, 1e-12), (False, 1e-5)):
        g = torch.empty(theta.size, dtype=torch.float64)
        f = objective(torch.from_numpy(theta.copy()), g, exact)
        assert f == pytest.approx(value, rel=rtol)
        np.testing.assert_allclose(g.numpy(), grad, rtol=rtol, atol=rtol * np.abs(grad).max())


def test_training_tau_is_the_tau_0_fit_with_a_shifted_bias():
    """Menon et al.'s loss with an unpenalized bias: the same W, the bias moved by -tau * log_prior."""
    x, y, counts = problem(d=120)
    weights, lp = class_weights(counts, "power", 0.5), log_prior(counts)
    at0 = fit_head(x, y, LossSpec(weights, lp, 0.0), 3e-4, gtol=1e-8)
    at1 = fit_head(x, y, LossSpec(weights, lp, 1.0), 3e-4, gtol=1e-8)
    np.testing.assert_allclose(at1.weight, at0.weight)
    np.testing.assert_allclose(at1.bias, at0.bias - lp)


@pytest.mark.gpu
def test_gpu_and_cpu_fits_reach_the_same_optimum():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    x, y, counts = problem()
    loss = LossSpec(class_weights(counts, "power", 0.5), log_prior(counts), 0.0)
    cpu = fit_head(x.astype(np.float32), y, loss, 1e-4, gtol=1e-7, device="cpu")
    gpu = fit_head(x.astype(np.float32), y, loss, 1e-4, gtol=1e-7, device="cuda")
    assert cpu.converged and gpu.converged
    gl, cl = gpu.logits(x), cpu.logits(x)
    np.testing.assert_allclose(gl - gl.mean(1, keepdims=True), cl - cl.mean(1, keepdims=True), atol=1e-4)
    assert (gpu.logits(x).argmax(1) == cpu.logits(x).argmax(1)).mean() >= 0.999


def test_optimum_matches_scikit_learn_logistic_regression_with_the_same_weights_and_penalty():
    x, y, counts = problem()
    weights, l2 = class_weights(counts, "power", 0.5), 1e-4
    fit = fit_head(x, y, LossSpec(weights, log_prior(counts), 0.0), l2, gtol=1e-8)
    # scikit-learn minimizes sum_i s_i CE_i / sum_i s_i + |W|^2 / (2 C sum_i s_i); our weights average 1 per
    # example, so sum_i s_i = n and C = 1 / (2 l2 n) is the same problem
    clf = LogisticRegression(
        C=1 / (2 * l2 * len(y)), class_weight=dict(enumerate(weights)), tol=1e-10, max_iter=10_000
    ).fit(x, y)
    assert clf.n_iter_[0] < 10_000
    np.testing.assert_allclose(fit.weight, clf.coef_.T, atol=2e-4 * np.abs(clf.coef_).max())
    ours = fit.logits(x)
    theirs = clf.decision_function(x)
    np.testing.assert_allclose(ours - ours.mean(1, keepdims=True), theirs - theirs.mean(1, keepdims=True), atol=1e-3)
    assert (ours.argmax(1) == clf.predict(x)).mean() >= 0.999


def test_optimum_matches_scipy_on_the_logit_adjusted_loss():
    x, y, counts = problem(d=120)
    weights, lp, tau, l2 = class_weights(counts, "power", 0.8), log_prior(counts), 1.0, 3e-4
    fit = fit_head(x, y, LossSpec(weights, lp, tau), l2, gtol=1e-8)
    theta0 = np.zeros(x.shape[1] * len(counts) + len(counts))
    ref = scipy.optimize.minimize(
        numpy_objective,
        theta0,
        args=(x, y, weights, lp, tau, l2),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 20_000},
    )
    assert np.abs(ref.jac).max() < 1e-8
    d, c = x.shape[1], len(counts)
    np.testing.assert_allclose(fit.weight, ref.x[: d * c].reshape(d, c), atol=1e-4 * np.abs(ref.x).max())
    assert fit.loss == pytest.approx(ref.fun, rel=1e-9)


@pytest.mark.parametrize("l2", [0.0, -1e-3])
def test_l2_must_be_positive(l2):
    x, y, counts = problem(n=200, d=20)
    with pytest.raises(ValueError, match=r"model.head.l2=.* must be > 0"):
        fit_head(x, y, LossSpec(np.ones(len(counts)), log_prior(counts)), l2)


def test_make_l2_prints_the_path_and_picks_the_lowest_validation_log_loss(synthetic, capsys):
    from sweep.cli import main
    from sweep.config import load_config
    from sweep.models.select_l2 import best_l2, l2_path

    table = l2_path(load_config(synthetic), grid=(1e-4, 1e-3, 1e-2))
    assert list(table["l2"]) == [1e-4, 1e-3, 1e-2] and table["converged"].all()
    assert best_l2(table) == table.loc[table["val_log_loss"].idxmin(), "l2"]
    assert main(["l2", *synthetic]) == 0
    assert "lowest validation log-loss at l2 =" in capsys.readouterr().out
    assert main(["l2", *synthetic, "model=minilm_finetune"]) == 2
