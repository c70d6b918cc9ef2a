"""On a real CUDA GPU (marker gpu; skipped elsewhere): with one GPU, two local workers share device 0, each
trial records it, and every head fit converges."""

import optuna
import pytest

from sweep.cli import main
from sweep.config import load_config
from sweep.search.storage import open_storage


@pytest.mark.gpu
def test_two_workers_on_one_gpu_both_use_device_0(synthetic, root):
    torch = pytest.importorskip("torch")
    if torch.cuda.device_count() != 1:
        pytest.skip(f"needs exactly one CUDA GPU, torch sees {torch.cuda.device_count()}")
    args = [*synthetic, "sweep.workers=2", "sweep.n_trials=2", "sweep.study_name=one-gpu", "sweep.sampler=random"]
    assert main(["sweep", *args]) == 0
    study = optuna.load_study(study_name="one-gpu", storage=open_storage(load_config(args)))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 4 and len({t.user_attrs["worker"] for t in done}) == 2
    assert {t.user_attrs["cuda_visible_devices"] for t in done} == {"0"}
    assert all(t.user_attrs["fit_converged"] for t in done if "fit_converged" in t.user_attrs)
