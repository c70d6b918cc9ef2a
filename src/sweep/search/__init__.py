"""Search: the Optuna study (study), one trial (objective), the Optuna storage (storage), local worker
processes (workers) and the Pareto front (pareto)."""
