"""The process's caches in one object (sweep.memo.CACHE): a run after clear() computes again what the first one
cached, clear() empties every registered cache, and each test starts without what earlier ones left there."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from sweep.config import load_config, load_trial_config
from sweep.data.features import featurize
from sweep.data.splits import load_splits
from sweep.environment import code_version
from sweep.memo import CACHE, ProcessCache
from sweep.models.train import run

# every module cache of the package, by the name it registers
MODULE_CACHES = {
    "config.composed",
    "data.features.memory",
    "data.precomputed.digests",
    "data.precomputed.logits",
    "data.splits._load_cached",
    "models.finetune.prefixes",
    "models.finetune.runners",
    "models.head.on_device",
    "models.train.logits",
    "models.train.warm_starts",
    "report.table.load_predictions",
    "environment.code_version",
}


def test_each_test_starts_without_what_earlier_tests_left():
    import sweep.models.finetune  # noqa: F401 - registers its slots
    import sweep.report.table  # noqa: F401 - registers its lru_cache

    # tests/conftest.py by its path: `import conftest` gives whichever conftest.py pytest imported last
    # (tests/report/ has one of its own)
    spec = importlib.util.spec_from_file_location("tests_conftest", Path(__file__).with_name("conftest.py"))
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    CONTENT_KEYED = conftest.CONTENT_KEYED

    assert MODULE_CACHES <= set(CACHE.names()) and CONTENT_KEYED < MODULE_CACHES
    left = {name: n for name, n in CACHE.sizes().items() if n and name not in CONTENT_KEYED}
    assert not left, left


def test_a_second_featurization_after_clear_computes_again(synthetic, root):
    CACHE.clear()  # the content-keyed caches too: an earlier test may have featurized the same texts
    cfg = load_config(synthetic)
    splits = load_splits(cfg.data, cfg.paths.data_dir)
    first, info = featurize(splits, cfg.model, root / "cache_a")
    assert info["cached"] == "computed"
    again, info = featurize(splits, cfg.model, root / "cache_a")
    assert info["cached"] == "memory" and again is first  # the same process: no work at all
    CACHE.clear()
    assert load_splits(cfg.data, cfg.paths.data_dir) is not splits  # split again, the same texts
    fresh, info = featurize(splits, cfg.model, root / "cache_b")  # no disk copy either: built from the texts
    assert info["cached"] == "computed" and fresh is not first
    for split in ("train", "val", "test"):
        assert (fresh[split] != first[split]).nnz == 0 and fresh[split].shape == first[split].shape


def test_clear_empties_every_cache_a_run_filled(synthetic):
    CACHE.clear()
    cfg = load_trial_config(synthetic, {"weighting.alpha": 0.5})
    first = run(cfg)
    assert first.info["logits_cache"] == "trained"
    code_version()
    filled = {name for name, n in CACHE.sizes().items() if n}
    assert {
        "config.composed",
        "data.splits._load_cached",
        "data.features.memory",
        "models.train.logits",
        "models.train.warm_starts",
        "environment.code_version",
    } <= filled
    assert run(cfg).info["logits_cache"] == "memory"
    CACHE.clear()
    assert not any(CACHE.sizes().values()), CACHE.sizes()
    second = run(cfg)  # memory empty: the logits come back from the run's disk cache, the same numbers
    assert second.info["logits_cache"] == "disk"
    assert second.metrics["val_macro_f1"] == first.metrics["val_macro_f1"]
    np.testing.assert_array_equal(second.predictions["test"], first.predictions["test"])


def test_a_slot_is_one_live_dict_and_a_bad_name_says_which_exist():
    cache = ProcessCache()
    memory = cache.slot("a.memory")
    assert cache.slot("a.memory") is memory
    memory["k"] = 1
    calls = []

    @cache.lru_cache(maxsize=2)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    assert square(3) == square(3) == 9 and calls == [3]
    assert cache.sizes() == {"a.memory": 1, f"{__name__}.{square.__qualname__}": 1}
    cache.clear("a.memory")
    assert memory == {} and cache.slot("a.memory") is memory  # emptied in place: importers keep the live dict
    cache.clear()
    assert square(3) == 9 and calls == [3, 3]
    with pytest.raises(KeyError, match="no cache named 'a.memroy': the registered ones are a.memory"):
        cache.clear("a.memroy")
    with pytest.raises(ValueError, match="non-empty name"):
        cache.slot("")
