"""Decision-ready export: test figures computed from the logged predictions, intervals, classes gained / lost,
head vs tail, who beats whom on test, the report, re-split / re-seeded spread."""

import json

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from sweep.cli import main
from sweep.config import load_config
from sweep.models.metrics import _scores_from_confusion, bootstrap, comparisons, head_tail, interval, resample_indices
from sweep.models.metrics import head_classes as _head_classes
from sweep.report.document import statements
from sweep.search.pareto import baseline_points
from sweep.search.storage import open_storage


def test_scores_from_confusion_match_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, 400)
    p = np.where(rng.random(400) < 0.6, y, rng.integers(0, 6, 400))
    s = _scores_from_confusion(confusion_matrix(y, p, labels=range(6)))
    assert s["accuracy"] == pytest.approx((y == p).mean())
    assert s["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p))


def test_bootstrap_intervals_behave():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 2000)
    noisy = np.where(rng.random(2000) < 0.7, y, rng.integers(0, 4, 2000))
    b = bootstrap(y, {"perfect": y, "noisy": noisy, "same": noisy.copy()}, 4, n_boot=1000)
    assert interval(b["perfect"]["accuracy"]) == (1.0, 1.0)
    lo, hi = interval(b["noisy"]["accuracy"])
    assert lo < (noisy == y).mean() < hi and 0.01 < hi - lo < 0.06  # about +-2 standard errors
    assert interval(b["noisy"]["macro_f1"] - b["same"]["macro_f1"]) == (0.0, 0.0)  # paired resamples
    # stratified: every resample keeps the class supports
    small = bootstrap(y[:200], {"p": noisy[:200]}, 4, n_boot=50)
    assert small["p"]["accuracy"].shape == (50,)


def test_head_and_tail_are_measured_with_the_same_two_metrics():
    rng = np.random.default_rng(3)
    counts = np.array([500, 50, 300, 20, 100, 30])  # head (80% of 1000): classes 0, 2 ; tail: 4, 1, 5, 3
    assert sorted(_head_classes(counts)) == [0, 2]
    y = rng.integers(0, 6, 1500)
    pred = np.where(rng.random(1500) < 0.6, y, rng.integers(0, 6, 1500))
    got = head_tail({"y": y, "pred": pred, "names": list("abcdef"), "counts": counts}, _head_classes(counts))
    for group, classes in (("head", [0, 2]), ("tail", [1, 3, 4, 5])):
        member = np.isin(y, classes)
        assert got[f"{group}_accuracy"] == pytest.approx(accuracy_score(y[member], pred[member]))
        # per-class F1 on the whole test split (a tail example predicted as head is a false positive there)
        assert got[f"{group}_macro_f1"] == pytest.approx(f1_score(y, pred, labels=classes, average="macro"))


def test_comparisons_say_who_beats_whom_beyond_noise_and_when_a_baseline_is_better_within_noise():
    rng = np.random.default_rng(4)
    y = rng.choice(4, size=3000, p=[0.7, 0.1, 0.1, 0.1])
    bad = np.where(rng.random(3000) < 0.45, y, rng.integers(0, 4, 3000))  # trial 1: about 59% right
    good = np.where(rng.random(3000) < 0.9, y, rng.integers(0, 4, 3000))  # trial 2 and sqrt_inverse (trial 3)
    better = good.copy()
    better[np.flatnonzero(good != y)[0]] = y[np.flatnonzero(good != y)[0]]  # one error fewer: within noise
    preds = {1: bad, 2: good, 3: good.copy(), "posthoc": better, "majority_class": np.zeros_like(y)}
    samples = bootstrap(y, preds, 4, n_boot=1000)
    scores = {
        k: {"accuracy": accuracy_score(y, p), "macro_f1": f1_score(y, p, average="macro")} for k, p in preds.items()
    }
    baselines = {"sqrt_inverse": 3, "posthoc_tau_1": "posthoc", "majority_class": "majority_class"}
    got = comparisons(samples, scores, [1, 2, 3], baselines)

    # trial 1 loses to everything on accuracy, even to the majority class (70% of the examples)
    assert got[1]["beats_beyond_noise"] == "majority_class (macro-F1)"
    assert got[1]["beaten_by_baseline"] == (
        "sqrt_inverse on accuracy and macro-F1 (beyond noise); posthoc_tau_1 "
        "on accuracy and macro-F1 (beyond noise); majority_class on accuracy "
        "(beyond noise)"
    )
    # trial 2 beats trial 1 and the majority class; the baseline on the front (trial 3) is named as the
    # baseline; a baseline one example better is better on both metrics, within noise
    assert got[2]["beats_beyond_noise"] == "trial 1 (accuracy and macro-F1); majority_class (accuracy and macro-F1)"
    assert got[2]["beaten_by_baseline"] == "posthoc_tau_1 on accuracy and macro-F1 (within noise)"
    assert got[3] == got[2]  # a baseline is not compared with itself
    table = pd.DataFrame([{"trial": n, **got[n]} for n in (1, 2)])
    said = statements(table)
    assert "On test, baseline posthoc_tau_1 beats trial 2 on accuracy and macro-F1 (within noise)." in said
    assert "On test, baseline majority_class beats trial 1 on accuracy (beyond noise)." in said
    assert (
        "On test, trial 2 beats beyond noise: trial 1 (accuracy and macro-F1); majority_class (accuracy and "
        "macro-F1)." in said
    )


def test_the_test_plot_takes_its_points_from_the_caller_and_rings_the_beaten_ones(tmp_path, monkeypatch):
    import sweep.report.plots as plots

    study = optuna.create_study(study_name="plot", directions=["maximize", "maximize"])
    for values in ([0.9, 0.5], [0.8, 0.6], [0.7, 0.4]):
        study.add_trial(optuna.trial.create_trial(values=values))
    with pytest.raises(ValueError, match="needs points="):
        plots.plot_front(study, tmp_path / "x.png", {}, split="test")
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, layout=True: figures.append(fig) or path)
    plots.plot_front(
        study,
        tmp_path / "t.png",
        {"sqrt inverse": (0.85, 0.58)},
        split="test",
        points={0: (0.88, 0.52), 1: (0.82, 0.57)},
        flagged={1: "beaten by sqrt_inverse"},
    )
    ax = figures[0].axes[0]
    assert ax.get_xlabel() == "test accuracy"
    texts = {t.get_text() for t in ax.texts}
    assert {"0", "1: beaten by sqrt_inverse"} <= texts
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "scored trials (2)" in legend and "beaten by a baseline (1)" in legend  # trial 2 has no test point
    front_line = [line for line in ax.lines if line.get_label().startswith("Pareto front")][0]
    assert sorted(front_line.get_xdata()) == [0.82, 0.88]


def test_two_points_that_round_alike_keep_their_own_label():
    from sweep.report.document import unique_labels

    got = unique_labels({3: "alpha 0.75", 7: "alpha 0.75", 9: "unweighted"})
    assert got == {3: "alpha 0.75 (trial 3)", 7: "alpha 0.75 (trial 7)", 9: "unweighted"}


def test_a_plot_is_never_half_written(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sweep.report.plots import _save

    (tmp_path / "p.png").write_bytes(b"the previous export")
    fig = plt.figure()

    def broken(path, **kwargs):
        open(path, "wb").write(b"\x89PNG half")  # then the disk fills up
        raise OSError("No space left on device")

    fig.savefig = broken
    with pytest.raises(OSError, match="No space"):
        _save(fig, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temporary file left


def test_spread_keeps_labels_apart_in_their_order_and_inside_the_axes():
    from sweep.report.annotate import spread

    ys = [0.50, 0.51, 0.505, 0.9, 0.99, 0.02]
    got = spread(ys, gap=0.05)
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    heights = [got[i] for i in order]
    assert all(b - a >= 0.05 - 1e-12 for a, b in zip(heights, heights[1:], strict=False))
    assert 0.03 <= min(got) and max(got) <= 0.97
    assert spread([0.2, 0.6], gap=0.05) == [0.2, 0.6]  # far enough apart: not moved


def test_the_test_plot_says_when_a_baseline_beats_the_front_and_its_labels_do_not_overlap(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    import sweep.report.plots as plots

    study = optuna.create_study(study_name="cfpb-cfpb_sample-tfidf_linear", directions=["maximize", "maximize"])
    close = [(0.80 + 0.001 * i, 0.70 - 0.001 * i) for i in range(8)]  # a tight front: labels would pile up
    for values in close:
        study.add_trial(optuna.trial.create_trial(values=list(values)))
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, layout=True: figures.append(fig) or path)
    note = "On test, the baseline sqrt-inverse weights beats 2 of the 8 validation-chosen front points (ringed)."
    plots.plot_front(
        study,
        tmp_path / "t.png",
        {"sqrt-inverse weights": (0.81, 0.71)},
        split="test",
        points=dict(enumerate(close)),
        flagged={0: "beaten by sqrt-inverse weights"},
        note=note,
        intervals={
            i: {"accuracy": (x - 0.01, x + 0.01), "macro_f1": (y - 0.02, y + 0.02)} for i, (x, y) in enumerate(close)
        },
    )
    fig = figures[0]
    ax = fig.axes[0]
    assert note in ax.get_title().replace("\n", " ") and study.study_name not in ax.get_title()
    assert "95% bootstrap interval" in [t.get_text() for t in ax.get_legend().get_texts()]
    fig.canvas.draw()
    boxes = [Text.get_window_extent(t) for t in ax.texts]  # the words, not their leader lines
    assert len(boxes) == 8
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    plt.close(fig)


def test_the_per_class_plot_names_the_classes_that_moved_and_counts_whole_classes(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    import sweep.report.plots as plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, layout=True: figures.append(fig) or path)
    names = [f"class {i}" for i in range(7)]
    counts = np.array([500, 300, 120, 60, 30, 12, 5])
    reference = np.array([0.9, 0.8, 0.6, 0.3, 0.0, 0.0, 0.0])
    f1 = np.array([0.88, 0.8, 0.62, 0.5, 0.35, 0.4, 0.0])
    plots.plot_per_class(
        f1,
        counts,
        "alpha 0.75 + post-hoc tau 0.33",
        tmp_path / "p.png",
        reference=reference,
        names=names,
        marked=[5, 4, 3],
    )
    fig = figures[0]
    left, right = fig.axes
    assert fig._suptitle.get_text() == "Per-class test F1: alpha 0.75 + post-hoc tau 0.33 vs the unweighted model"
    assert sorted(t.get_text() for t in right.texts) == ["class 3", "class 4", "class 5"]
    fig.canvas.draw()
    ticks = [t for t in left.get_yticks() if left.get_ylim()[0] <= t <= left.get_ylim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    boxes = [Text.get_window_extent(t) for t in right.texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    plt.close(fig)


@pytest.mark.slow  # a whole export with its bootstraps: make test's, not the edit loop's
def test_export_computes_test_figures_from_predictions_intervals_head_tail_and_comparisons(
    shared_sweep, tmp_path, capsys
):
    args = shared_sweep("decide")
    cfg = load_config(args)
    study = optuna.load_study(study_name="decide", storage=open_storage(cfg))
    assert not any(k.startswith("test_") for t in study.trials for k in t.user_attrs.get("metrics", {}))  # scored here
    study.ask()  # a trial still RUNNING: the export warns that the front may change
    capsys.readouterr()
    out = tmp_path / "decide.csv"
    assert main(["export", *args, "study=decide", f"out={out}", "n_boot=500", "sweep.front_boot=100"]) == 0
    said = capsys.readouterr()
    assert "study decide has 1 RUNNING trial(s): the front may change; run export again when they finish" in said.err
    table = pd.read_csv(out, keep_default_na=False)
    client = MlflowClient(cfg.tracking.tracking_uri)
    trials = {t.number: t for t in study.trials}

    def predictions(trial: int):
        with np.load(client.download_artifacts(trials[trial].user_attrs["mlflow_run_id"], "predictions.npz")) as z:
            return z["test_true"].astype(int), z["test_pred"].astype(int)

    def classes(trial: int) -> dict[str, int]:
        with open(client.download_artifacts(trials[trial].user_attrs["mlflow_run_id"], "classes.json")) as f:
            return json.load(f)["train_class_counts"]

    def scores(trial: int) -> dict:  # independent of the export: scikit-learn on the logged predictions
        y, p = predictions(trial)
        f1 = f1_score(y, p, labels=range(len(classes(trial))), average=None, zero_division=0)
        return {
            "accuracy": accuracy_score(y, p),
            "macro_f1": f1.mean(),
            "balanced_accuracy": balanced_accuracy_score(y, p),
            "zero_f1": int((f1 == 0).sum()),
            "f1": f1,
        }

    ref = int(table["reference_trial"][0])
    assert baseline_points(study)["unweighted"].number == ref
    r = scores(ref)
    names = list(classes(ref))
    head = _head_classes(np.array(list(classes(ref).values())))
    tail = np.setdiff1d(np.arange(len(names)), head)

    def groups(trial: int) -> dict:
        y, p = predictions(trial)
        return {
            f"{g}_{m}": (
                accuracy_score(y[np.isin(y, c)], p[np.isin(y, c)])
                if m == "accuracy"
                else f1_score(y, p, labels=c, average="macro", zero_division=0)
            )
            for g, c in (("head", head), ("tail", tail))
            for m in ("accuracy", "macro_f1")
        }

    rg = groups(ref)
    for row in table.itertuples():
        s = scores(row.trial)
        assert row.test_accuracy == pytest.approx(s["accuracy"], abs=1e-4)
        assert row.test_macro_f1 == pytest.approx(s["macro_f1"], abs=1e-4)
        assert row.test_balanced_accuracy == pytest.approx(s["balanced_accuracy"], abs=1e-4)
        assert row.zero_f1_classes == s["zero_f1"]
        assert row.delta_test_accuracy == pytest.approx(s["accuracy"] - r["accuracy"], abs=2e-4)
        assert row.delta_test_macro_f1 == pytest.approx(s["macro_f1"] - r["macro_f1"], abs=2e-4)
        for metric in ("accuracy", "macro_f1", "balanced_accuracy"):
            assert getattr(row, f"test_{metric}_ci_low") <= getattr(row, f"test_{metric}") + 1e-4
            assert getattr(row, f"test_{metric}") <= getattr(row, f"test_{metric}_ci_high") + 1e-4
        g = groups(row.trial)
        for k, v in g.items():
            assert getattr(row, k) == pytest.approx(v, abs=1e-4)
            assert getattr(row, f"delta_{k}") == pytest.approx(v - rg[k], abs=2e-4)
        gained = sorted(names[i] for i in np.flatnonzero((r["f1"] == 0) & (s["f1"] > 0)))
        lost = sorted(names[i] for i in np.flatnonzero((r["f1"] > 0) & (s["f1"] == 0)))
        assert sorted(filter(None, row.classes_gained.split("; "))) == gained
        assert sorted(filter(None, row.classes_lost.split("; "))) == lost
        noisy = (
            row.delta_test_accuracy_ci_low <= 0 <= row.delta_test_accuracy_ci_high
            and row.delta_test_macro_f1_ci_low <= 0 <= row.delta_test_macro_f1_ci_high
        )
        assert row.within_noise == noisy
        # the comparison columns agree with the point estimates; the statements repeat them in words
        assert "majority_class (" in row.beats_beyond_noise  # a trained model beats it at least on macro-F1
        for entry in filter(None, row.beaten_by_baseline.split("; ")):
            name, _, how = entry.partition(" on ")
            b = scores(baseline_points(study)[name].number)
            if "and macro-F1 (within noise)" in how:
                assert b["accuracy"] > s["accuracy"] and b["macro_f1"] > s["macro_f1"]
            assert f"On test, baseline {name} beats trial {row.trial} on {how}." in said.out
    if not table["beaten_by_baseline"].any():
        assert "no baseline beats a Pareto point" in said.out
    report = tmp_path / "decide_report"
    md = (report / "report.md").read_text()
    assert md.count("![") == 1 + len(table) and "On test, in words" in md
    assert (report / "pareto_test.png").stat().st_size > 10_000
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    logged = {f.path for f in client.list_artifacts(parent.info.run_id, "export")}
    assert "export/decide.csv" in logged and "export/pareto_test.png" in logged
    assert any(f.path.startswith("per_class_f1_trial_") for f in client.list_artifacts(table["mlflow_run_id"][0]))

    # how sure the front is: p_front against the slow plain-Python computation on the same validation resamples
    from slow_front import slow_p_front

    def validation(trial: int):
        with np.load(client.download_artifacts(trials[trial].user_attrs["mlflow_run_id"], "predictions.npz")) as z:
            return z["val_true"].astype(int), z["val_pred"].astype(int)

    done = [t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    y_val = validation(done[0])[0]
    slow = slow_p_front(
        y_val, {n: validation(n)[1] for n in done}, len(names), resample_indices(y_val, 100), ["accuracy", "macro_f1"]
    )
    for row in table.itertuples():
        assert row.p_front == pytest.approx(slow[row.trial], abs=1e-9)
        run = client.get_run(trials[row.trial].user_attrs["mlflow_run_id"])
        assert run.data.metrics["p_front"] == pytest.approx(slow[row.trial], abs=1e-9)  # on the trial's run too
        s = scores(row.trial)  # coverage: classes with F1 > 0, with its interval
        assert row.test_coverage == int((s["f1"] > 0).sum()) and row.n_classes == len(names)
        assert row.test_coverage_ci_low <= row.test_coverage <= row.test_coverage_ci_high
    tied = pd.read_csv(tmp_path / "decide_tied.csv")
    front_numbers = set(table["trial"])
    expected = sorted(n for n in done if n not in front_numbers and slow[n] >= 0.1)
    assert sorted(tied["trial"]) == expected and list(tied["p_front"]) == sorted(tied["p_front"], reverse=True)
    meeting = (tmp_path / "decide_meeting.md").read_text()
    sentence = next(line for line in meeting.splitlines() if "statistically tied" in line)
    assert sentence in said.out and (f"{len(expected)} trial" in sentence or "No trial off the front" in sentence)
    assert "95% paired bootstrap of the test examples, resampled with replacement" in meeting

    # the deployment mix: the uniform mix re-weights the test split; the reference adjusted for it is post-hoc
    # tau 1 (log pi_uniform is a constant), so its row must equal the posthoc_tau_1 baseline's, scored apart
    capsys.readouterr()
    mixed = tmp_path / "mixed.csv"
    assert (
        main(
            [
                "export",
                *args,
                "study=decide",
                f"out={mixed}",
                "n_boot=300",
                "deploy_prior=uniform",
                "bootstrap=stratified",
                "dense=1",
            ]
        )
        == 0
    )
    uniform = pd.read_csv(mixed, keep_default_na=False)
    y_test = predictions(ref)[0]
    w = (1 / len(names)) / (np.bincount(y_test, minlength=len(names)) / len(y_test))
    for row in uniform.itertuples():
        y, p = predictions(row.trial)
        assert row.deploy_accuracy == pytest.approx(accuracy_score(y, p, sample_weight=w[y]), abs=1e-4)
        assert row.deploy_macro_f1 == pytest.approx(
            f1_score(y, p, labels=range(len(names)), average="macro", sample_weight=w[y], zero_division=0), abs=1e-4
        )
        assert row.deploy_accuracy_ci_low <= row.deploy_accuracy + 1e-4 <= row.deploy_accuracy_ci_high + 2e-4
    cells = pd.read_csv(tmp_path / "mixed_meeting.csv").set_index("model")
    adjusted = cells.loc["unweighted + post-hoc tau 1 for the uniform mix"]
    tau_1 = scores(baseline_points(study)["posthoc_tau_1"].number)
    assert adjusted["test_accuracy_pct"] == pytest.approx(100 * tau_1["accuracy"], abs=0.006)
    assert adjusted["test_macro_f1_pct"] == pytest.approx(100 * tau_1["macro_f1"], abs=0.006)
    assert {"deploy_accuracy_pct", "deploy_accuracy_pct_low", "deploy_accuracy_pct_high"} <= set(cells.columns)
    text = (tmp_path / "mixed_meeting.md").read_text()
    assert "| Accuracy % on the uniform mix [95% CI]" in text
    assert "stratified bootstrap" in text and "the two uniform-mix columns re-weight each test example" in text
    assert (tmp_path / "mixed_report" / "pareto_deploy.png").stat().st_size > 10_000
    # the dense front: from the trials' tau curves, each point re-scored exactly (validation) and on test
    dense = pd.read_csv(tmp_path / "mixed_dense.csv")
    assert not dense.empty and (dense["candidates"] >= 1).all()
    for r in dense.itertuples():
        run_id = trials[int(r.trial)].user_attrs["mlflow_run_id"]
        curve = pd.read_csv(client.download_artifacts(run_id, "tau_curve.csv")).set_index("posthoc_tau")
        assert r.val_accuracy == pytest.approx(curve.loc[r.posthoc_tau, "val_accuracy"], abs=5e-5)
        assert r.val_macro_f1 == pytest.approx(curve.loc[r.posthoc_tau, "val_macro_f1"], abs=5e-5)
        assert r.test_accuracy_ci_low <= r.test_accuracy <= r.test_accuracy_ci_high
    assert "Winner's curse" in (tmp_path / "mixed_report" / "report.md").read_text()
    assert main(["export", *args, "study=decide", "bootstrap=bca"]) == 2


@pytest.mark.slow  # an export that re-fits each point on new seeds: make test's, not the edit loop's
def test_export_seeds_vary_the_split_and_the_model_seed(shared_sweep, tmp_path):
    args = shared_sweep("spread")
    out = tmp_path / "spread.csv"
    assert main(["export", *args, "study=spread", f"out={out}", "n_boot=100", "seeds=2"]) == 0
    table = pd.read_csv(out)
    std = [f"test_{m}_resplit_reseed_std" for m in ("accuracy", "macro_f1")]
    assert set(std) <= set(table.columns) and (table["resplit_reseed_runs"] == 2).all()
    assert (table[std].to_numpy() > 0).any()  # another train/validation split moves the test figures
    assert main(["export", *args, "study=spread", "seeds=0"]) == 2
