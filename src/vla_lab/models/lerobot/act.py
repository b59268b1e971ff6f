"""ACT (Action Chunking Transformer, Zhao et al. 2023) as LeRobot builds it, in our module family.

The config groups split LeRobot's `ACTConfig`: `backbone` (the ResNet image encoder), `head`
(the transformer encoder/decoder and the VAE) and `model` (chunking, inference, loss).
"""

from __future__ import annotations

from vla_lab import features as ft
from vla_lab import lerobot_api as lr
from vla_lab.models.finetune import count_parameters
from vla_lab.models.lerobot.act_graph import act_graph_export
from vla_lab.models.lerobot.base import LeRobotPolicyModule
from vla_lab.models.lerobot.loss import act_masked_loss
from vla_lab.models.module import Capabilities, GraphExport
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)


class ACTModule(LeRobotPolicyModule):
    """LeRobot's `ACTPolicy`: `(B, chunk_size, A)` actions from the cameras and the joint state.

    What ACT adds to the generic LeRobot path: the masked L1 + KL loss, `finetune=frozen` (the
    ResNet frozen) and a pretrained policy's shapes checked against the run's. Its `kl_weight`,
    `temporal_ensemble_coeff` (e.g. 0.01 with `n_action_steps=1`; deployment only) and the
    head/backbone groups are `ACTConfig` fields.
    """

    capabilities = Capabilities(export_formats=("lerobot", "torchscript", "onnx"))
    policy_type = "act"
    finetune_modes = ("full", "frozen")
    has_masked_loss = True
    observation_history = False

    def make_config(self, inputs: dict, outputs: dict):
        if not any(f.type == lr.FeatureType.VISUAL for f in inputs.values()):
            raise ValueError(
                "ACT needs at least one camera (observation.images.*), but the dataset serves "
                f"{sorted(self.dataset_features)}."
            )
        if self.backbone_cfg.get("pretrained_policy"):
            return self._pretrained_config(inputs, outputs)
        return super().make_config(inputs, outputs)

    def _pretrained_config(self, inputs: dict, outputs: dict):
        """`backbone.pretrained_policy`'s ACT config, on this dataset's features: its network
        (head, backbone) wins over the config groups; the shapes its weights fix must match."""
        config = self.pretrained_config()
        theirs = {
            "observation.state": _shape(config.robot_state_feature),
            "action": _shape(config.action_feature),
            "model.chunk_size": config.chunk_size,
        }
        ours = {
            "observation.state": _shape(inputs.get(ft.STATE)),
            "action": _shape(outputs[ft.ACTION]),
            "model.chunk_size": self.policy_cfg.get("chunk_size", config.chunk_size),
        }
        if theirs != ours:
            raise ValueError(
                f"backbone.pretrained_policy={self.backbone_cfg['pretrained_policy']!r} was "
                f"trained with {theirs}, but this run has {ours}: its weights cannot be loaded. "
                "Train on data with the same state and action dimensions and set "
                "model.chunk_size to the policy's."
            )
        config.input_features = inputs
        config.output_features = outputs
        for key, value in self.policy_cfg.items():
            setattr(config, key, value)
        # Its ResNet weights are in its model.safetensors: no torchvision download.
        config.pretrained_backbone_weights = None
        config.device = "cpu"
        return config

    def masked_loss(self, batch: dict):
        return act_masked_loss(self.policy, batch)

    def apply_finetune(self) -> None:
        frozen = self.finetune_cfg["mode"] == "frozen"
        for param in self.policy.model.backbone.parameters():
            param.requires_grad_(not frozen)
        counts = count_parameters(self.policy)
        log.info(
            "ACT (%s): %d of %d parameters trainable; action dim %s.",
            self.finetune_cfg["mode"],
            counts["trainable"],
            counts["total"],
            self.dataset_features[ft.ACTION].shape,
        )

    def export_graph(self, seed: int = 0) -> GraphExport:
        """The whole policy at inference, its normaliser folded in (`act_graph`)."""
        return act_graph_export(self, seed)


def _shape(feature) -> tuple[int, ...] | None:
    return tuple(feature.shape) if feature is not None else None
