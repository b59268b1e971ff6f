"""LeRobot policy configs as the installed LeRobot reads them, whichever LeRobot wrote them.

LeRobot decodes `config.json` with draccus, which rejects any key its config class lacks, and
each release adds keys (0.6 writes `pretrained_revision`): a policy saved by a newer LeRobot would
not load. Such keys are dropped here, with one warning naming them and the file, because they
describe where a policy came from, not the network, whose shapes the weights check anyway.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

from vla_lab import lerobot_api as lr
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

CONFIG_NAME = "config.json"


def policy_config_file(name: str) -> Path:
    """The `config.json` of a policy directory or hub id (from the HF cache, or downloaded)."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(
                f"{path} has no {CONFIG_NAME}: give a LeRobot policy directory (what "
                "save_pretrained or lerobot-train's checkpoints/<step>/pretrained_model holds)."
            )
        return path / CONFIG_NAME
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not a hub id
        raise FileNotFoundError(f"LeRobot policy {name!r} is not a directory.")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=name, filename=CONFIG_NAME))
    except Exception as err:  # hub errors come in many types; all mean "not loadable here"
        raise OSError(
            f"Cannot read LeRobot policy {name!r}: it is not a local directory and the HF hub "
            f"could not provide its {CONFIG_NAME} ({type(err).__name__}: {err})."
        ) from err


def read_policy_config(name: str):
    """The `PreTrainedConfig` of the policy at `name` (a directory or hub id), saved by LeRobot
    0.4, 0.5 or 0.6; keys the installed LeRobot does not know are dropped with a warning."""
    path = policy_config_file(name)
    return decode_policy_config(path.read_text(), source=str(path))


def decode_policy_config(config_json: str, source: str = "the checkpoint's policy_config"):
    """A `PreTrainedConfig` from the text of a `config.json`; `source` names it in messages."""
    data = json.loads(config_json)
    policy_type = data.get("type")
    known_types = sorted(lr.PreTrainedConfig.get_known_choices())
    if policy_type not in known_types:
        raise ValueError(
            f"{source} has policy type {policy_type!r}; LeRobot {lr.LEROBOT_VERSION} knows "
            f"{known_types}."
        )
    config_class = lr.PreTrainedConfig.get_choice_class(policy_type)
    fields = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(data) - fields - {"type"})
    if unknown:
        log.warning(
            "%s: dropping %s, unknown to LeRobot %s's %s (written by another LeRobot release).",
            source,
            ", ".join(unknown),
            lr.LEROBOT_VERSION,
            config_class.__name__,
        )
        data = {key: value for key, value in data.items() if key not in unknown}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / CONFIG_NAME).write_text(json.dumps(data))
        return lr.PreTrainedConfig.from_pretrained(tmp)
