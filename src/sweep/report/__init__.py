"""Report: the front for people and scripts: make export (export), the tables (table, meeting), make pick
(pick), plot labels (annotate) and links into the MLflow UI (links)."""
