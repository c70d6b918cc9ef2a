import numpy as np
from sklearn.metrics import f1_score

from sweep.models.metrics import evaluate


def test_micro_f1_equals_accuracy_on_single_label_data():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    scalars, _ = evaluate(y, p, [f"c{i}" for i in range(7)])
    assert f1_score(y, p, average="micro") == scalars["accuracy"]


def test_zero_f1_classes_and_per_class_table():
    y = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([0, 0, 1, 1, 0, 0])  # class 2 never predicted correctly
    scalars, table = evaluate(y, p, ["a", "b", "c"])
    assert scalars["zero_f1_classes"] == 1
    assert table["support"].tolist() == [3, 2, 1]
    assert table.loc[2, "f1"] == 0.0
    assert scalars["accuracy"] == 3 / 6
    # macro-F1 by hand: a: P=2/4 R=2/3 ; b: P=1/2 R=1/2 ; c: 0
    f_a = 2 * (0.5 * 2 / 3) / (0.5 + 2 / 3)
    assert np.isclose(scalars["macro_f1"], (f_a + 0.5 + 0) / 3)
