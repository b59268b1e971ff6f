"""Every `python -m vla_lab.<verb>` command is a Hydra app on its own `conf/<verb>.yaml`: `--help`
shows its config, and its job is a plain function of the composed config (tested in-process)."""

from __future__ import annotations

import sys

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from vla_lab import label
from vla_lab.data import preview
from vla_lab.runtime import drive, export
from vla_lab.utils.config import compose_config

# command -> (its main, a line of its config that --help shows)
COMMANDS = {
    "export": (export.main, "ckpt_path: ???"),
    "drive": (drive.main, "commander_hz: 1"),
    "label": (label.main, "flush_every: 50"),
    "preview": (preview.main, "split: all"),
}


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_the_commands_own_config(name, monkeypatch, capsys):
    main, line = COMMANDS[name]
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 0
    help_text = capsys.readouterr().out
    assert f"{name} is powered by Hydra" in help_text
    assert line in help_text.splitlines()


@pytest.mark.parametrize("name", ["export", "label", "preview"])
def test_commands_that_write_to_out_make_no_run_dir(name):
    cfg = compose_config(["out=x"], config_name=name)
    assert cfg.hydra.output_subdir is None and cfg.hydra.run.dir == "."
    assert "file" not in cfg.hydra.job_logging.handlers  # no <job>.log either


def test_preview_takes_train_overrides_and_types_its_own_options():
    overrides = ["experiment=roarm_act_demo", "hardware.batch_size=3"]
    trained = OmegaConf.to_container(compose_config(overrides))
    previewed = OmegaConf.to_container(
        compose_config([*overrides, "n=4", "split=val"], config_name="preview")
    )
    assert {k: previewed.pop(k) for k in ("n", "split", "out")} == {
        "n": 4,
        "split": "val",
        "out": "preview.png",
    }
    trained.pop("hydra"), previewed.pop("hydra")
    assert previewed == trained
    with pytest.raises(ConfigCompositionException, match="n=many"):
        compose_config(["n=many"], config_name="preview")
    with pytest.raises(ConfigCompositionException, match="trainer.max_epoch"):
        compose_config(["trainer.max_epoch=3"], config_name="preview")
