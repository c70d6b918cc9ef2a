"""Report: the front for people and scripts: make export (export, reseed), the tables (table, meeting), the
plots (plots, annotate), make pick (pick), links into the MLflow UI (links) and the end of a sweep (finish)."""
