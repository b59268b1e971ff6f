"""Configs that cannot silently lie: a misspelt key or a wrong type in any experiment file or
override fails at start-up, naming the key and where it was set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from vla_lab.train import train
from vla_lab.utils.config import CONF_DIR, PROJECT_ROOT
from vla_lab.utils.config_check import ConfigCheckError, check_targets


@pytest.fixture()
def user_experiment(tmp_path: Path, make_cfg):
    """`compose(body)`: the config of an experiment file `experiment/mine.yaml` with `body`, in a
    config dir added to Hydra's search path (as a lab's own experiments would be)."""

    def compose(body: str, *overrides: str):
        folder = tmp_path / "my_conf" / "experiment"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "mine.yaml").write_text(
            "# @package _global_\ndefaults:\n  - mobile_vla_demo\n  - _self_\n" + body
        )
        return make_cfg(
            [f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]", "experiment=mine", *overrides]
        )

    return compose


def test_a_misspelt_trainer_key_in_an_experiment_file_names_the_key_and_the_file(
    user_experiment,
):
    with pytest.raises(ConfigCompositionException) as error:
        user_experiment("trainer:\n  max_epoch: 3\n")
    message = str(error.value) + str(error.value.__cause__)
    assert "experiment/mine" in message and "trainer.max_epoch" in message


def test_a_wrong_type_in_an_experiment_file_names_the_key(user_experiment):
    with pytest.raises(ConfigCompositionException) as error:
        user_experiment("hardware:\n  batch_size: sixteen\n")
    message = str(error.value) + str(error.value.__cause__)
    assert "experiment/mine" in message and "hardware.batch_size" in message


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.max_epoch=3", "trainer.max_epoch"),
        ("trainer.max_epochs=ten", "trainer.max_epochs"),
        ("paths.data_dirr=/data", "paths.data_dirr"),
        ("data.split.val_fraction=most", "data.split.val_fraction"),
        ("seeed=1", "seeed"),
    ],
)
def test_a_bad_override_names_the_key(make_cfg, override: str, key: str):
    with pytest.raises(ConfigCompositionException) as error:
        make_cfg([override])
    assert key in str(error.value) + str(error.value.__cause__)


def test_a_misspelt_model_argument_fails_before_training_naming_the_file(user_experiment):
    cfg = user_experiment("model:\n  window_sise: 4\n")
    with pytest.raises(ConfigCheckError) as error:
        train(cfg)
    message = str(error.value)
    assert "model.window_sise" in message and "KosmosLSTMPolicy takes no 'window_sise'" in message
    assert "my_conf/experiment/mine.yaml" in message
    assert "window_size" in message  # what it does take


def test_arguments_of_sources_and_callbacks_are_type_checked_naming_the_override(make_cfg):
    cfg = make_cfg(["data.source.cache_mb=lots", "callbacks.step_checkpoint.every_n_train_steps=x"])
    with pytest.raises(ConfigCheckError) as error:
        check_targets(cfg)
    lines = str(error.value).splitlines()[1:]
    assert len(lines) == 2
    assert "data.source.cache_mb: 'lots' is not int" in lines[0]
    assert "the command line (data.source.cache_mb=lots)" in lines[0]
    assert "callbacks.step_checkpoint.every_n_train_steps" in lines[1]


def test_the_default_config_and_every_option_pass_the_check(make_cfg):
    for overrides in (
        [],
        ["debug=profiler", "logger=many", "hardware=fsdp", "finetune=lora", "head=mlp"],
        ["experiment=roarm_act_demo", "hardware=slurm", "hparams_search=roarm_act_optuna"],
    ):
        check_targets(make_cfg(overrides))


@pytest.mark.parametrize(
    "flags, expected",
    [(["--cfg", "job"], "max_epochs: 20"), (["--info", "defaults"], "schema/train")],
)
def test_the_cli_prints_the_composed_config_and_where_it_came_from(flags, expected):
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "train.py"), *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout


@pytest.mark.parametrize(
    "search", sorted(p.stem for p in (CONF_DIR / "hparams_search").glob("*_optuna.yaml"))
)
def test_every_optuna_search_sweeps_keys_its_demo_experiment_has(make_cfg, search: str):
    """A demo experiment for each search, and no swept key that would be silently added."""
    experiment = search.removesuffix("_optuna") + "_demo"
    cfg = make_cfg([f"experiment={experiment}", f"hparams_search={search}"])
    params = cfg.hydra.sweeper.params
    assert params and cfg.optimized_metric
    for key in params:
        assert OmegaConf.select(cfg, key) is not None, f"{search} sweeps {key}, not in the config"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["experiment=roarm_act_demo", "head=lstm"], r"head=lstm does not fit model=act"),
        (["model=kosmos_lstm", "head=act"], r"head=act does not fit model=kosmos_lstm"),
        (["experiment=roarm_act_demo", "head=flow"], r"\['attention_mode'.*ACTConfig"),
    ],
)
def test_a_head_that_does_not_fit_the_model_fails_at_start_up_naming_both(
    make_cfg, overrides, message
):
    with pytest.raises(ConfigCheckError, match=message):
        train(make_cfg(overrides))
