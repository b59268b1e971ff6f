"""ACT (Action Chunking Transformer, Zhao et al. 2023) as LeRobot builds it, in our module family.

The config groups split LeRobot's `ACTConfig`: `backbone` (the ResNet image encoder), `head`
(the transformer encoder/decoder and the VAE) and `model` (chunking, inference, loss).
"""

from __future__ import annotations

from omegaconf import DictConfig

from vla_lab import features as ft
from vla_lab import lerobot_api as lr
from vla_lab.models.finetune import count_parameters
from vla_lab.models.lerobot_loss import act_masked_loss
from vla_lab.models.lerobot_policy import LeRobotPolicyModule
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)


class ACTModule(LeRobotPolicyModule):
    """LeRobot's `ACTPolicy`: `(B, chunk_size, A)` actions from the cameras and the joint state.

    `temporal_ensemble_coeff` (e.g. 0.01, with `n_action_steps=1`) only changes `select_action`,
    i.e. deployment of an exported policy; training and `predict_action_chunk` are unaffected.
    """

    policy_class = lr.ACTPolicy

    def __init__(
        self,
        backbone: DictConfig,
        head: DictConfig,
        finetune: DictConfig,
        optimizer: DictConfig,
        scheduler: DictConfig | None = None,
        head_lr: float | None = None,
        chunk_size: int = 100,
        n_action_steps: int = 100,
        kl_weight: float = 10.0,
        temporal_ensemble_coeff: float | None = None,
        loss: str = "masked",
        rename_map: dict[str, str] | None = None,
        use_imagenet_stats: bool = True,
    ) -> None:
        super().__init__(
            backbone,
            head,
            finetune,
            optimizer,
            scheduler,
            head_lr,
            backbone_attr="backbone",  # the ResNet: `policy.model.backbone`
            chunk_size=chunk_size,
            loss=loss,
            rename_map=rename_map,
            use_imagenet_stats=use_imagenet_stats,
        )
        self.save_hyperparameters(logger=False)
        if self.finetune_cfg.get("mode") not in ("full", "frozen"):
            raise ValueError(
                f"finetune={self.finetune_cfg.get('mode')!r} does not apply to ACT: it has no "
                "language model for LoRA adapters. Use finetune=full or finetune=frozen (ResNet "
                "frozen, transformer trained)."
            )
        self.policy_options = {
            "chunk_size": chunk_size,
            "n_action_steps": n_action_steps,
            "kl_weight": kl_weight,
            "temporal_ensemble_coeff": temporal_ensemble_coeff,
        }

    def make_config(self, inputs: dict, outputs: dict):
        if not any(f.type == lr.FeatureType.VISUAL for f in inputs.values()):
            raise ValueError(
                "ACT needs at least one camera (observation.images.*), but the dataset serves "
                f"{sorted(self.dataset_features)}."
            )
        if self.backbone_cfg.get("pretrained_policy"):
            return self._pretrained_config(inputs, outputs)
        backbone = dict(self.backbone_cfg)
        vision_backbone = backbone.pop("name", "resnet18")
        backbone.pop("pretrained_policy", None)
        return lr.ACTConfig(
            input_features=inputs,
            output_features=outputs,
            device="cpu",
            vision_backbone=vision_backbone,
            **backbone,
            **self.head_cfg,
            **self.policy_options,
        )

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
            "model.chunk_size": self.chunk_size,
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
        for key, value in self.policy_options.items():
            setattr(config, key, value)
        # Its ResNet weights are in its model.safetensors: no torchvision download.
        config.pretrained_backbone_weights = None
        config.device = "cpu"
        return config

    def restore_config(self, config, payload: dict):
        # The checkpoint holds the trained ResNet: no torchvision download when loading it.
        config.pretrained_backbone_weights = None
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


def _shape(feature) -> tuple[int, ...] | None:
    return tuple(feature.shape) if feature is not None else None
