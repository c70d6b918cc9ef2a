"""make bench ARGS=grid=1: one cell of the cost grid on a small Zipf fixture (real sweep, real stores)."""

import math

from sweep.bench.cost import _cell


def test_cost_cell_reports_the_sweeps_own_fits(tmp_path):
    r = _cell([f"paths.root={tmp_path}"], str(tmp_path / "data"), classes=8, texts=1000, trials=4)
    assert (r["classes"], r["texts"], r["trials"]) == (8, 1000, 4)
    assert r["unconverged"] == 0 and r["features"] > 0 and r["featurize_s"] > 0
    # the first fit starts cold; the warm ones start from a fitted solution and need fewer iterations
    assert r["cold_it"] > 0 and not math.isnan(r["warm_it"]) and r["warm_it"] < r["cold_it"]
    # 4 trials: unweighted (cold fit), sqrt-inverse (warm fit), post-hoc tau 1 (reused logits), one TPE trial
    assert r["trial_s"] <= r["wall_s"]
