"""sweep: make the accuracy vs macro-F1 trade-off of class weighting and logit adjustment visible.

Data flow, one module per step:
    data -> split (data.py) -> featurize / encode, cached (features.py, finetune.py)
    -> train with weights and loss (losses.py, train.py) -> evaluate (metrics.py)
    -> log (tracking.py) -> Optuna study (study.py) -> Pareto front (pareto.py) -> export (export.py)
"""

__version__ = "0.1.0"
