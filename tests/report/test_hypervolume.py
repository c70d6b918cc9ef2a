"""The front's hypervolume against Optuna's own (an independent implementation, minimization of the negatives)."""

import numpy as np
from optuna._hypervolume import compute_hypervolume

from sweep.report.hypervolume import hypervolume_2d


def test_hypervolume_2d_is_optunas():
    rng = np.random.default_rng(0)
    for _ in range(200):
        pts = rng.random((rng.integers(1, 12), 2))
        ref = rng.random(2) * 0.5
        above = pts[(pts > ref).all(1)]
        expected = compute_hypervolume(-above, -ref) if len(above) else 0.0
        assert abs(hypervolume_2d(pts, ref) - expected) < 1e-12


def test_hypervolume_of_one_point_and_of_nothing():
    assert hypervolume_2d([(0.8, 0.5)], (0.2, 0.1)) == (0.8 - 0.2) * (0.5 - 0.1)
    assert hypervolume_2d([(0.1, 0.9)], (0.2, 0.1)) == 0.0  # below the reference: adds nothing
