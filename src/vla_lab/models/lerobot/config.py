"""LeRobot policy configs as the installed LeRobot reads them, whichever LeRobot wrote them.

LeRobot decodes `config.json` with draccus, which rejects any key its config class lacks, and
each release adds keys (0.6 writes `pretrained_revision`): a policy saved by a newer LeRobot would
not load. Such keys are dropped here, with one warning naming them and the file, because they
describe where a policy came from, not the network, whose shapes the weights check anyway.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from pathlib import Path

from vla_lab import lerobot_api as lr
from vla_lab.models.backbones.hub import local_or_hub_dir
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

CONFIG_NAME = "config.json"


def policy_config_file(name: str) -> Path:
    """The `config.json` of a policy directory or hub id (from the HF cache, or downloaded)."""
    directory = local_or_hub_dir(
        name,
        allow_patterns=[CONFIG_NAME],
        what="LeRobot policy",
        hint="Give a LeRobot policy directory (what save_pretrained or lerobot-train's "
        "checkpoints/<step>/pretrained_model holds).",
    )
    if not (directory / CONFIG_NAME).is_file():
        raise FileNotFoundError(
            f"{directory} has no {CONFIG_NAME}: give a LeRobot policy directory (what "
            "save_pretrained or lerobot-train's checkpoints/<step>/pretrained_model holds)."
        )
    return directory / CONFIG_NAME


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


def check_policy_type(policy_type: str | None) -> str:
    """`policy_type` if LeRobot registers it, else a start-up error listing the ones it does."""
    known = sorted(lr.PreTrainedConfig.get_known_choices())
    if policy_type not in known:
        raise ValueError(
            f"model.policy_type={policy_type!r} is not a policy LeRobot {lr.LEROBOT_VERSION} "
            f"registers; known: {', '.join(known)}."
        )
    return policy_type


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_offline(config, policy_type: str) -> None:
    """Fail before building `config`'s policy if it would download something this machine lacks.

    Two kinds of download hide in LeRobot configs: torchvision ImageNet weights
    (`pretrained_backbone_weights`, read from the torch hub cache) and Hugging Face repos named
    by string fields (a VLM, a tokenizer: pi0's, SmolVLA's `vlm_model_name`). Without network a
    download hangs or fails deep inside the model's constructor; here it fails at start-up,
    naming the field, what it would load and where it looked.
    """
    weights = getattr(config, "pretrained_backbone_weights", None)
    if weights:
        import torch
        import torchvision

        url = torchvision.models.get_weight(weights).url
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        if not path.is_file():
            raise FileNotFoundError(
                f"LeRobot policy {policy_type!r} would load pretrained_backbone_weights="
                f"{weights!r} ({url}), which is not in the torch hub cache ({path}) and is not "
                "downloaded at start-up. Put the file there, or train the backbone from scratch: "
                "model.policy.pretrained_backbone_weights=null (or "
                "backbone.pretrained_backbone_weights=null)."
            )
    for field in dataclasses.fields(config):
        value = getattr(config, field.name, None)
        if not isinstance(value, str) or not HUB_ID.match(value) or Path(value).exists():
            continue
        from huggingface_hub import snapshot_download

        try:
            snapshot_download(value, local_files_only=True)
        except Exception as err:  # not cached: LocalEntryNotFoundError and relatives
            raise FileNotFoundError(
                f"LeRobot policy {policy_type!r} would load {field.name}={value!r} from the "
                f"Hugging Face hub, which is not in the local cache ({type(err).__name__}) and "
                "is not downloaded at start-up. Download it where there is network, or set "
                f"model.policy.{field.name} to a local directory."
            ) from err


def make_processors_offline(config, stats: dict, policy_type: str):
    """LeRobot's pre/post processors for `config`, built with the hub offline: a processor that
    loads its own files (pi0's PaliGemma tokenizer is named in its code, not its config) takes
    them from the local cache or fails here, naming them, instead of hanging on a download."""
    from unittest import mock

    from huggingface_hub import constants

    try:
        with mock.patch.object(constants, "HF_HUB_OFFLINE", True):
            return lr.make_pre_post_processors(config, dataset_stats=stats)
    except OSError as err:  # transformers' "couldn't connect ... cached files" and relatives
        repo = _requested_repo(err)
        raise FileNotFoundError(
            f"LeRobot policy {policy_type!r}: building its processors loads {repo!r} from the "
            "Hugging Face hub, which is not in the local cache and is not downloaded at "
            f"start-up ({type(err).__name__}). Download it where there is network "
            f"(`hf download {repo}`) and copy the cache here."
        ) from err


REPO_ARGUMENTS = ("repo_id", "path_or_repo_id", "pretrained_model_name_or_path")


def _requested_repo(err: BaseException) -> str:
    """The hub repo a failed load asked for: transformers' messages do not name it, the
    arguments of the functions it failed in do."""
    while err is not None:
        tb = err.__traceback__
        while tb is not None:
            for name in REPO_ARGUMENTS:
                value = tb.tb_frame.f_locals.get(name)
                if isinstance(value, str) and value:
                    return value
            tb = tb.tb_next
        err = err.__cause__ or err.__context__
    return "a hub file"
