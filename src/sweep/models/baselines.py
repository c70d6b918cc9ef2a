"""The table that frames every decision: majority class, TF-IDF + logistic regression, and the configured
model unweighted, with sqrt-inverse weights, and with post-hoc logit adjustment tau = 1."""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweep.data.splits import Splits, load_splits
from sweep.models.metrics import evaluate
from sweep.models.train import run

COLUMNS = ["accuracy", "macro_f1", "balanced_accuracy", "zero_f1_classes"]
VARIANTS = {  # name -> overrides of the configured model
    "unweighted": {"weighting": {"scheme": "power", "alpha": 0.0}, "loss": {"name": "ce", "posthoc_tau": 0.0}},
    "sqrt_inverse": {"weighting": {"scheme": "power", "alpha": 0.5}, "loss": {"name": "ce", "posthoc_tau": 0.0}},
    "posthoc_tau_1": {"weighting": {"scheme": "power", "alpha": 0.0}, "loss": {"name": "ce", "posthoc_tau": 1.0}},
}


def majority(splits: Splits) -> dict[str, dict]:
    top = int(np.argmax(splits.train_counts))
    return {
        s: evaluate(splits.labels[s], np.full_like(splits.labels[s], top), splits.class_names)[0]
        for s in ("val", "test")
    }


def tfidf_logreg(splits: Splits, cfg: DictConfig) -> dict[str, dict]:
    """scikit-learn's LogisticRegression on the same cached TF-IDF features as model=tfidf_linear."""
    from sklearn.linear_model import LogisticRegression

    from sweep.data.features import featurize

    model_cfg = OmegaConf.create(
        {"features": "tfidf", "tfidf": {"max_features": 50000, "ngram_max": 2, "min_df": 2, "sublinear_tf": True}}
    )
    feats, _ = featurize(splits, model_cfg, cfg.paths.cache_dir)
    clf = LogisticRegression(C=10.0, max_iter=1000).fit(feats["train"], splits.labels["train"])
    return {s: evaluate(splits.labels[s], clf.predict(feats[s]), splits.class_names)[0] for s in ("val", "test")}


def variant_config(cfg: DictConfig, name: str) -> DictConfig:
    out = OmegaConf.merge(cfg, {"weighting": VARIANTS[name]["weighting"]})
    out.loss = OmegaConf.create(VARIANTS[name]["loss"])
    return out


def baselines(cfg: DictConfig) -> tuple[pd.DataFrame, dict]:
    """Rows: baseline name; columns: test metrics. Also returns each row's full result for logging."""
    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    rows: dict[str, dict] = {"majority_class": majority(splits), "tfidf_logreg_sklearn": tfidf_logreg(splits, cfg)}
    full = {}
    for name in VARIANTS:
        vcfg = variant_config(cfg, name)
        result = run(vcfg)
        label = f"{cfg.model.name}_{name}"
        full[label] = (vcfg, result)
        rows[label] = {
            s: {k[len(s) + 1 :]: v for k, v in result.metrics.items() if k.startswith(s + "_")} for s in ("val", "test")
        }
    table = pd.DataFrame({name: r["test"] for name, r in rows.items()}).T[COLUMNS]
    table["zero_f1_classes"] = table["zero_f1_classes"].astype(int)
    return table, {"rows": rows, "runs": full}
