"""Read a checkpoint file once per job: its run config and its trained module, from one load.

A vla-lab checkpoint carries the resolved run config, the dataset's features and stats, the
weights and, when training wrote it, the optimizer state (for Adam twice the weights: ~19 GB
beside a full Kosmos-2 fine-tune). A job (evaluate, infer, export, drive, `load_policy`) calls
`load_checkpoint` once and passes the `LoadedCheckpoint` down; nothing else opens the file.

The one `torch.load` memory-maps the file whenever its format allows (every zip-format
`torch.save`, which is what Lightning writes), so only what is used comes from disk: the pickled
config and payload, then the weights when the module is built; the optimizer state never does.
The module is built on first use of `.module`, so a job can refuse a checkpoint by its config
before paying for the build.
"""

from __future__ import annotations

import inspect
import zipfile
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from lightning.pytorch.utilities.migration import migrate_checkpoint, pl_legacy_patch
from lightning.pytorch.utilities.model_helpers import is_overridden
from lightning_utilities.core.apply_func import apply_to_collection
from omegaconf import DictConfig, OmegaConf

from vla_lab.features import Feature, Stats
from vla_lab.models.module import CHECKPOINT_KEY, VLAModule
from vla_lab.utils.logging import get_logger
from vla_lab.utils.moved import rewrite_moved_targets

log = get_logger(__name__)


class LoadedCheckpoint:
    """A checkpoint file read once: `path`, `config` (the resolved run config, `_target_`s of
    moved modules pointing at their current place: `vla_lab.utils.moved`) and `module`."""

    def __init__(self, path: Path, contents: dict[str, Any]) -> None:
        self.path = path
        payload = contents.get(CHECKPOINT_KEY) if isinstance(contents, dict) else None
        if not payload or not payload.get("config"):
            raise ValueError(
                f"{path} is not a vla-lab checkpoint: it has no '{CHECKPOINT_KEY}.config'"
            )
        self.config: DictConfig = OmegaConf.create(
            rewrite_moved_targets(payload["config"], f"{path}'s config")
        )
        # A tensor of the payload that on_load_checkpoint kept would stay mapped from the file
        # and change with it if the file were overwritten in place: copy the few there are
        # (the weights are copied into the module by load_state_dict).
        contents[CHECKPOINT_KEY] = apply_to_collection(payload, torch.Tensor, torch.clone)
        self._contents: dict[str, Any] | None = contents
        self._module: VLAModule | None = None

    @property
    def module(self) -> VLAModule:
        """The trained module (the class of `config.model._target_`), in eval mode on the CPU,
        with its dataset features and stats; built on first use from the loaded contents, which
        are then let go (the optimizer state with them)."""
        if self._module is None:
            module_class = get_class(self.config.model._target_)
            self._module = module_from_checkpoint(module_class, self._contents, self.path)
            self._contents = None
        return self._module

    @property
    def features(self) -> dict[str, Feature]:
        """What the model was trained on (deployment checks observations against it)."""
        return self.module.dataset_features

    @property
    def stats(self) -> Stats:
        """The train split's stats the model normalises with."""
        return self.module.dataset_stats

    def __repr__(self) -> str:
        return f"LoadedCheckpoint({str(self.path)!r})"


def load_checkpoint(ckpt_path: str | Path | LoadedCheckpoint) -> LoadedCheckpoint:
    """Read `ckpt_path` (one `torch.load`, memory-mapped where the format allows) into a
    `LoadedCheckpoint`; one already loaded is returned as it is, so callers can take either."""
    if isinstance(ckpt_path, LoadedCheckpoint):
        return ckpt_path
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    # torch.load(mmap=True) needs the zip format; the legacy one is read whole.
    with pl_legacy_patch():  # as Lightning's own load: checkpoints of older Lightning versions
        contents = torch.load(
            path, map_location="cpu", weights_only=False, mmap=zipfile.is_zipfile(path)
        )
    return LoadedCheckpoint(path, contents)


def module_from_checkpoint(
    module_class: type[VLAModule], checkpoint: dict[str, Any], path: Path | str = "checkpoint"
) -> VLAModule:
    """What `module_class.load_from_checkpoint(path, map_location="cpu").eval()` returns, built
    from the checkpoint's contents already in memory.

    Lightning (checked against 2.5.6) takes only a path or a file to `load_from_checkpoint`, so
    this repeats its steps (`lightning.pytorch.core.saving._load_state`) with public calls:
    migrate the contents to the installed Lightning, call `__init__` with the saved
    hyperparameters, `configure_model` when overridden, `on_load_checkpoint` (stats, features,
    rebuilt LeRobot policies), `load_state_dict` (strict unless the class sets
    `strict_loading = False`). `tests/test_checkpoint.py` compares the two.
    """
    checkpoint, migrations = migrate_checkpoint(checkpoint)
    if migrations:
        log.info("%s was written by an older Lightning; upgraded in memory: %s", path, migrations)
    hparams = dict(checkpoint.get(module_class.CHECKPOINT_HYPER_PARAMS_KEY) or {})
    parameters = list(inspect.signature(module_class.__init__).parameters.values())[1:]
    named = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    hparams_name = checkpoint.get(module_class.CHECKPOINT_HYPER_PARAMS_NAME)
    if hparams_name and hparams_name in named:  # save_hyperparameters(<one dict argument>)
        hparams = {hparams_name: hparams}
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        hparams = {k: v for k, v in hparams.items() if k in named}
    module = module_class(**hparams)
    if is_overridden("configure_model", module):
        module.configure_model()
    module.on_load_checkpoint(checkpoint)
    strict = module.strict_loading
    keys = module.load_state_dict(checkpoint["state_dict"], strict=strict)
    if not strict and (keys.missing_keys or keys.unexpected_keys):
        log.warning(
            "%s: weights missing from the checkpoint %s, in it but not in %s: %s",
            path, keys.missing_keys, module_class.__name__, keys.unexpected_keys,
        )  # fmt: skip
    return module.eval()
