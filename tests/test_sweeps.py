"""Sweeps from the command line: grids, failing jobs, Optuna studies that continue, submitit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna

from vla_lab.utils.config import PROJECT_ROOT

FAST = ["hardware.num_workers=0", "hardware.batch_size=4", "print_config=false", "debug=fdr"]


def _sweep(shared_dirs, log_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        str(PROJECT_ROOT / "train.py"),
        "-m",
        f"paths.data_dir={shared_dirs['data_dir']}",
        f"paths.cache_dir={shared_dirs['cache_dir']}",
        f"paths.log_dir={log_dir}",
        "run_name=sweep",
        *FAST,
        *overrides,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _job_dirs(log_dir: Path) -> list[str]:
    sweep_dir = log_dir / "mobile_vla_demo" / "multirun" / "sweep"
    return sorted(p.name for p in sweep_dir.glob("[0-9]"))


def test_a_two_by_two_grid_runs_four_jobs_and_goes_on_past_a_failing_one(
    shared_dirs, tmp_path: Path
) -> None:
    """One sweep for both (each sweep is a ~20 s start): jobs 0 and 2 fail on a bad value."""
    _sweep(shared_dirs, tmp_path, "seed=1,2", "nonfinite_loss=bogus,stop")
    assert _job_dirs(tmp_path) == ["0", "1", "2", "3"]
    sweep_dir = tmp_path / "mobile_vla_demo" / "multirun" / "sweep"
    for job, failed in (("0", True), ("1", False), ("2", True), ("3", False)):
        job_log = (sweep_dir / job / "train.log").read_text()
        assert (f"Sweep job {job} failed" in job_log) == failed, job_log[-2000:]
        assert ("nonfinite_loss=bogus" in job_log) == failed
    assert "Run dir:" in (sweep_dir / "3" / "train.log").read_text()  # trained to the end


def test_optuna_study_continues_when_the_command_is_run_again(shared_dirs, tmp_path: Path) -> None:
    search = ["hparams_search=mobile_vla_optuna", "hydra.sweeper.sampler.n_startup_trials=1"]
    _sweep(shared_dirs, tmp_path, *search, "hydra.sweeper.n_trials=2")
    _sweep(shared_dirs, tmp_path, *search, "hydra.sweeper.n_trials=1")

    storage = f"sqlite:///{tmp_path / 'mobile_vla_demo' / 'optuna.db'}"
    study = optuna.load_study(study_name="mobile_vla_optuna", storage=storage)
    states = [trial.state for trial in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 3  # n_trials more on each run


def test_submitit_local_launcher_runs_every_job(shared_dirs, tmp_path: Path) -> None:
    _sweep(shared_dirs, tmp_path, "hydra/launcher=slurm_local", "seed=1,2")
    assert _job_dirs(tmp_path) == ["0", "1"]
    for job in ("0", "1"):
        log = tmp_path / "mobile_vla_demo" / "multirun" / "sweep" / job / "train.log"
        assert "Run dir:" in log.read_text()  # the job ran train() to the end


def test_a_ddp_job_in_a_basic_launcher_sweep_fails_clearly_and_the_sweep_goes_on(
    shared_dirs, tmp_path: Path
) -> None:
    """Lightning would start the second rank by re-running the whole sweep command."""
    result = _sweep(shared_dirs, tmp_path, "hardware=ddp_cpu", "hardware.num_workers=0", "seed=1")
    assert "Sweep multi-GPU jobs with hydra/launcher=slurm" in result.stdout + result.stderr
    assert _job_dirs(tmp_path) == ["0"]
