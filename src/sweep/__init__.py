"""sweep: make the accuracy vs macro-F1 trade-off of class weighting and logit adjustment visible.

Data flow, one subpackage per stage (each imports only the ones before it):
    data/    sources -> clean + split (splits) -> featurize / encode, cached (features, encoders)
    models/  train with weights and loss (losses, head, finetune, decoupled, train) -> evaluate (metrics)
    search/  Optuna study (study: objective per trial, storage, workers) -> Pareto front (pareto)
    report/  the front with test figures (table, meeting, plots) -> the sweep's end (finish), export, pick
    serve/   make ui, make dashboard;  bench/  make bench, make bench-gpu
    config.py, tracking.py (MLflow) at the edge; cli.py maps each command to its module.
Subpackages re-export nothing: import the module (`from sweep.models.head import fit_head`), so that importing
one never loads its siblings (the GPU machine runs models.finetune and bench.gpu without Hydra).
"""

from sweep import determinism  # noqa: F401  first: the float path is set before numpy or torch loads

__version__ = "0.1.0"
