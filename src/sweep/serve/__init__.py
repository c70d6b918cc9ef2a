"""Serve: the long-running UIs: make ui (ui, with guard stopping its whole process group) and make
dashboard (dashboard: Optuna Dashboard on the study storage)."""
