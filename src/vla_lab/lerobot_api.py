"""The one place vla-lab imports LeRobot (pinned: lerobot==0.6.1).

LeRobot moves its modules between releases (`lerobot.common.policies` -> `lerobot.policies` in
0.4, the v2.1 -> v3.0 converter to `lerobot.scripts` in 0.6); importing through this module means
the next move touches one file. Import lazily from
here inside functions where start-up time matters: LeRobot pulls in heavy dependencies.
"""

from __future__ import annotations

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
from lerobot.datasets.factory import IMAGENET_STATS
from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
from lerobot.policies.act.configuration_act import ACTConfig
from lerobot.policies.act.modeling_act import ACTPolicy
from lerobot.policies.factory import get_policy_class, make_pre_post_processors
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from lerobot.processor import (
    DeviceProcessorStep,
    PolicyProcessorPipeline,
    RenameObservationsProcessorStep,
)
from lerobot.scripts.convert_dataset_v21_to_v30 import (
    convert_dataset as convert_dataset_v21_to_v30,
)

LEROBOT_VERSION = "0.6.1"

__all__ = [
    "ACTConfig",
    "ACTPolicy",
    "DeviceProcessorStep",
    "FeatureType",
    "IMAGENET_STATS",
    "LEROBOT_VERSION",
    "LeRobotDataset",
    "LeRobotDatasetMetadata",
    "NormalizationMode",
    "PolicyFeature",
    "PolicyProcessorPipeline",
    "PreTrainedConfig",
    "RenameObservationsProcessorStep",
    "SmolVLAConfig",
    "SmolVLAPolicy",
    "convert_dataset_v21_to_v30",
    "get_policy_class",
    "make_pre_post_processors",
]
