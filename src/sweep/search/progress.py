"""The progress bar of a sweep run in this process: trials done, elapsed time, the Pareto front's size, failed
trials logged with their error; it keeps the MLflow runs' `pareto` tags current as trials complete."""

from __future__ import annotations

import logging

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweep.search.pareto import front, sync_pareto_tags
from sweep.tracking import Tracker

log = logging.getLogger(__name__)


class Progress:
    """tqdm bar: trials done, elapsed time, current Pareto-front size; keeps the `pareto` tags current."""

    def __init__(self, total: int, tracker: Tracker, enabled: bool = True):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="trial", desc="sweep", disable=not enabled)
        self.tracker, self.tags = tracker, {}
        self.failed = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            self.failed += 1
            log.warning("trial %d failed: %s", trial.number, trial.user_attrs.get("error", "see its MLflow run"))
        if trial.state == TrialState.COMPLETE:
            self.tags = sync_pareto_tags(study, self.tracker, self.tags)
        self.bar.update(1)
        self.bar.set_postfix(front=len(front(study)), failed=self.failed)

    def close(self) -> None:
        self.bar.close()
