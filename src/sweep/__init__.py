"""sweep: make the accuracy vs macro-F1 trade-off of class weighting and logit adjustment visible.

Data flow, one module per step:
    sources (sources.py) -> clean + split (data.py) -> featurize / encode, cached (features.py, finetune.py)
    -> train with weights and loss (losses.py, train.py) -> evaluate (metrics.py)
    -> log (tracking.py) -> Optuna study (study.py: objective.py per trial, storage.py, workers.py)
    -> Pareto front (pareto.py) -> its table with test figures (table.py) -> export (export.py), pick (pick.py)
"""

__version__ = "0.1.0"
