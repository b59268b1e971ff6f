"""Export a trained checkpoint to a deployable directory or graph file.

    python -m vla_lab.runtime.export ckpt_path=<ckpt> format=lerobot out=<dir>
    python -m vla_lab.runtime.export ckpt_path=<ckpt> format=torchscript|onnx out=<file> \
        [atol=1e-4] [dtype=float32|float16]

(`conf/export.yaml`; the job is `export_from_config`, the API `export`.)

`format=lerobot` writes what LeRobot's policy runner loads (`lerobot-rollout --policy.path=<dir>`
from LeRobot 0.6, `lerobot-record --policy.path=<dir>` in 0.4 and 0.5; see `ROBOT_COMMAND`):
`config.json` and `model.safetensors` (`policy.save_pretrained`), the pre/post processor files
(`save_pretrained` of each) and, for SmolVLA, the VLM's config and tokenizer files under
`<dir>/vlm` (the exported config's `vlm_model_name` points there, by absolute path, so move the
directory with its config edited or re-export it). `ACTPolicy.from_pretrained(dir)` /
`SmolVLAPolicy.from_pretrained(dir)` and `make_pre_post_processors(policy.config,
pretrained_path=dir)` then load it offline and act as our module does.

`format=torchscript|onnx` writes one fixed-shape, batch-1 graph (what it covers per model: its
`export_graph`), then loads it back (`torch.jit.load` / `onnxruntime.InferenceSession`) and
compares it with the PyTorch module on a sample; the file appears at `out` only when the largest
absolute difference is within `atol` (default 1e-4 for float32, 1e-2 for float16). Beside it,
`<out>.json` records the input/output names and shapes, the check and the normalisation stats
folded into the graph. `dtype=float16` casts the graph for a GPU runtime (checked on CUDA when
there is one); for the Jetson Orin prefer a float32 ONNX and `trtexec --fp16`
(conf/hardware/jetson_orin.yaml).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from vla_lab.models.backbones.files import WEIGHT_SUFFIXES
from vla_lab.runtime.checkpoint import LoadedCheckpoint, load_checkpoint
from vla_lab.runtime.export_file import GRAPH_FORMATS, export_graph_file
from vla_lab.utils.config import hydra_app
from vla_lab.utils.io import atomic_write_dir
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

FORMATS = ("lerobot", *GRAPH_FORMATS)
# LeRobot 0.6 added lerobot-rollout and made lerobot-record refuse to run without a teleoperator.
ROBOT_COMMAND = (
    "Run it on the robot with `lerobot-rollout --strategy.type=base --policy.path={dir} "
    "--robot.type=<follower, e.g. roarm_m3> --robot.port=<port> --robot.cameras=<as in the "
    "dataset> --task=<instruction> --duration=<s>` (LeRobot >= 0.6); LeRobot 0.4/0.5 have no "
    "lerobot-rollout: `lerobot-record` with the same --robot.* and --policy.path, plus "
    "--dataset.repo_id=<you>/eval_<name> --dataset.single_task=<instruction>."
)
VLM_SUBDIR = "vlm"
USAGE = (
    "python -m vla_lab.runtime.export ckpt_path=<ckpt> out=<dir or file> "
    f"[format={'|'.join(FORMATS)}] [atol=<max abs error>] [dtype=float32|float16]"
)


def export(
    ckpt_path: str | Path | LoadedCheckpoint,
    out: str | Path,
    format: str = "lerobot",
    atol: float | None = None,
    dtype: str = "float32",
) -> Path:
    """Write `ckpt_path` (a file or a `LoadedCheckpoint`) as `format` at `out` (atomically:
    all of it or nothing).

    `atol` and `dtype` apply to the graph formats (torchscript, onnx) only.
    """
    if format not in FORMATS:
        raise ValueError(
            f"Export format {format!r} is not yet supported; supported: {', '.join(FORMATS)}."
        )
    final = Path(out).expanduser().resolve()
    if final.exists():
        raise FileExistsError(f"Export target {final} exists; remove it or pick another out=.")
    if format in GRAPH_FORMATS:
        return export_graph_file(ckpt_path, final, format, atol, dtype)
    checkpoint = load_checkpoint(ckpt_path)
    model_cfg = checkpoint.config.model
    module_class = get_class(model_cfg._target_).built_class(model_cfg)
    if "lerobot" not in module_class.capabilities.export_formats:  # before the module build
        raise ValueError(
            "format=lerobot exports LeRobot policies (model=lerobot, act, smolvla); "
            f"{checkpoint.path} holds a {module_class.__name__}."
        )
    module = checkpoint.module
    atomic_write_dir(final, lambda tmp: write_lerobot_dir(module, tmp, final))
    log.info("Exported %s to %s. %s", checkpoint.path, final, ROBOT_COMMAND.format(dir=final))
    return final


def write_lerobot_dir(module, directory: Path, final: Path) -> None:
    """Write `module`'s policy and processors into `directory`, to be read back from `final`."""
    directory.mkdir(parents=True, exist_ok=True)
    policy = merged_policy(module.policy)
    config = copy.deepcopy(policy.config)
    vlm_dir = getattr(module, "vlm_dir", None)
    if vlm_dir is not None:
        # The VLM's weights are in model.safetensors; only its config and tokenizer travel.
        (directory / VLM_SUBDIR).mkdir()
        for path in Path(vlm_dir).iterdir():
            if path.is_file() and not path.name.endswith(WEIGHT_SUFFIXES):
                shutil.copy(path, directory / VLM_SUBDIR / path.name)
        config.vlm_model_name = str(final / VLM_SUBDIR)
        config.load_vlm_weights = False
    policy.config = config
    policy.save_pretrained(directory)
    drop_default_nulls(directory / "config.json", type(config))
    module.preprocessor.save_pretrained(directory)
    module.postprocessor.save_pretrained(directory)
    if vlm_dir is not None:
        _point_tokenizer_at(directory, str(final / VLM_SUBDIR))


def drop_default_nulls(path: Path, config_class: type) -> None:
    """Remove the keys of `path` (a policy's config.json) that are null and null by default.

    They carry nothing (the installed LeRobot fills them back in), and older LeRobots refuse keys
    they do not know: LeRobot 0.6 writes `pretrained_revision: null`, which 0.4 and 0.5 reject.
    """
    null_by_default = {f.name for f in dataclasses.fields(config_class) if f.default is None}
    config = json.loads(path.read_text())
    kept = {k: v for k, v in config.items() if v is not None or k not in null_by_default}
    path.write_text(json.dumps(kept, indent=4))


def merged_policy(policy):
    """A copy of `policy` with LoRA adapters merged into their base layers, so plain LeRobot (which
    knows nothing of peft) loads its state_dict; `policy` itself is untouched."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    policy = copy.deepcopy(policy)
    adapted = [(n, m) for n, m in policy.named_modules() if isinstance(m, BaseTunerLayer)]
    for name, layer in adapted:
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(policy.get_submodule(parent_name), child, layer.get_base_layer())
    return policy


def _point_tokenizer_at(directory: Path, vlm_dir: str) -> None:
    """The tokenizer step stores the VLM directory it was built from: point it at the export."""
    for path in directory.glob("*.json"):
        data = json.loads(path.read_text())
        steps = data.get("steps") if isinstance(data, dict) else None
        if not steps:
            continue
        for step in steps:
            if "tokenizer_name" in step.get("config", {}):
                step["config"]["tokenizer_name"] = vlm_dir
        path.write_text(json.dumps(data, indent=2))


def export_from_config(cfg: DictConfig) -> Path:
    """The job of `python -m vla_lab.runtime.export`: `export` with the options of
    `conf/export.yaml`."""
    missing = [key for key in ("ckpt_path", "out") if OmegaConf.is_missing(cfg, key)]
    if missing:
        raise ValueError(f"{' and '.join(f'{k}=' for k in missing)} required; usage: {USAGE}")
    return export(cfg.ckpt_path, cfg.out, cfg.format, atol=cfg.atol, dtype=cfg.dtype)


def main() -> None:
    """`python -m vla_lab.runtime.export key=value ...` (`--help` lists the keys)."""
    hydra_app(export_from_config, "export")()


if __name__ == "__main__":
    main()
