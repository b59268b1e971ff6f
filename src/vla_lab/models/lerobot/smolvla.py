"""SmolVLA (Shukor et al. 2025) as LeRobot builds it, in our module family.

A SmolVLM (first `num_vlm_layers` layers) reads the cameras, the task and the state; an action
expert at `expert_width_multiplier` of its width cross-attends to it and predicts the velocity of
a flow from noise to the action chunk (`num_steps` Euler steps at inference). Config groups:
`backbone` (which VLM, or which pretrained policy), `head=flow` (the expert and the flow),
`model` (chunking, padding, tokenizer, loss), `finetune` (frozen: expert only; full; lora).
"""

from __future__ import annotations

from pathlib import Path

from vla_lab import features as ft
from vla_lab import lerobot_api as lr
from vla_lab.models.backbones.files import pack_dir_files, unpack_dir_files
from vla_lab.models.backbones.hub import local_or_hub_dir
from vla_lab.models.backbones.smolvlm_tiny import build_tiny_smolvlm
from vla_lab.models.finetune import apply_finetune, count_parameters
from vla_lab.models.lerobot.base import LeRobotPolicyModule
from vla_lab.models.lerobot.loss import smolvla_masked_loss
from vla_lab.models.module import Capabilities
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

VLM_ATTR = "policy.model.vlm_with_expert.vlm"  # SmolVLMForConditionalGeneration; `.model` holds
# `text_model` and `vision_model`, the scopes apply_finetune expects.
OFFLINE_HINT = "Offline use a local directory, or the tiny VLM: `backbone=smolvlm_tiny`."
SMOLVLA_NOT_EXPORTABLE = (
    "SmolVLA is not exportable to a TorchScript/ONNX graph: its flow sampling runs the SmolVLM2 "
    "prefix once into a transformers KV cache (a Python `DynamicCache` object, not a tensor) and "
    "then `num_steps` Euler steps of the action expert against it, after tokenising the task in "
    "Python; neither torch.jit.trace nor the ONNX exporter captures the cache object. Deploy it "
    "with `load_policy(ckpt)` (PyTorch) or export it with format=lerobot."
)


class SmolVLAModule(LeRobotPolicyModule):
    """LeRobot's `SmolVLAPolicy`: `(B, chunk_size, A)` actions from cameras, state and `task`.

    What SmolVLA adds to the generic LeRobot path: the VLM (a local directory, the hub's, or the
    tiny offline one) whose config and tokenizer files travel in the checkpoint, the masked flow
    loss, and the three finetune modes (frozen: LeRobot's expert-only training; full; lora).
    """

    capabilities = Capabilities(
        export_formats=("lerobot",), graph_export_note=SMOLVLA_NOT_EXPORTABLE
    )
    policy_type = "smolvla"
    finetune_modes = ("full", "frozen", "lora")
    has_masked_loss = True
    default_use_imagenet_stats = False  # SmolVLA does not normalise images (IDENTITY)
    backbone_attr_name = "vlm"  # head_lr goes to the expert and projections, not the VLM
    observation_history = False
    vlm_dir: Path | None = None

    def config_fields(self, with_backbone: bool = True) -> dict:
        """The head group and `model.policy` as `SmolVLAConfig` fields, plus the finetune
        flags; the backbone group is read by `make_config` (it names the VLM, not fields)."""
        mode = self.finetune_cfg.get("mode")
        return {
            **super().config_fields(with_backbone=False),
            # frozen is LeRobot's expert-only training; lora freezes the VLM through peft.
            "train_expert_only": mode == "frozen",
            "freeze_vision_encoder": mode != "full" or not self.finetune_cfg.get("train_vision"),
        }

    # ---- building ----------------------------------------------------------------------------
    def make_config(self, inputs: dict, outputs: dict):
        backbone = self.backbone_cfg
        if backbone.get("pretrained_policy"):
            config = self.pretrained_config()
            # The pretrained policy fixes its cameras; the dataset's map onto them (rename_map).
            cameras = {k: f for k, f in config.input_features.items() if k != ft.STATE}
            config.input_features = {**cameras, ft.STATE: inputs[ft.STATE]}
            config.output_features = outputs
            for key, value in self.config_fields().items():
                if key in self.policy_cfg or key in ("train_expert_only", "freeze_vision_encoder"):
                    setattr(config, key, value)
            config.device = "cpu"
        else:
            config = lr.SmolVLAConfig(
                input_features=inputs,
                output_features=outputs,
                device="cpu",
                vlm_model_name=backbone["vlm_model_name"],
                load_vlm_weights=backbone["load_vlm_weights"],
                num_vlm_layers=backbone["num_vlm_layers"],
                resize_imgs_with_padding=tuple(backbone["resize_imgs_with_padding"]),
                **self.config_fields(),
            )
        if backbone.get("tiny"):
            size = int(backbone.get("tiny_image_size", 32))
            resize = list(backbone.get("resize_imgs_with_padding") or [size, size])
            if resize != [size, size]:
                raise ValueError(
                    f"backbone.resize_imgs_with_padding={resize} must be [{size}, {size}], the "
                    "tiny VLM's backbone.tiny_image_size."
                )
            self.vlm_dir = build_tiny_smolvlm(backbone["cache_dir"], image_size=size)
        else:
            self.vlm_dir = local_or_hub_dir(
                config.vlm_model_name,
                ["*.json", "*.txt", "*.jinja"]
                + (["*.safetensors"] if config.load_vlm_weights else []),
                what="SmolVLA VLM",
                hint=OFFLINE_HINT,
            )
        config.vlm_model_name = str(self.vlm_dir)
        return config

    def restore_config(self, config, payload: dict):
        # Config and tokenizer files from the checkpoint, weights from its state_dict: offline.
        self.vlm_dir = unpack_dir_files(
            payload["vlm_files"], self.backbone_cfg["cache_dir"], prefix="smolvlm"
        )
        config.vlm_model_name = str(self.vlm_dir)
        config.load_vlm_weights = False
        config.device = "cpu"
        return config

    def extra_checkpoint_payload(self) -> dict:
        payload = super().extra_checkpoint_payload()
        if self.vlm_dir is not None:
            payload["vlm_files"] = pack_dir_files(self.vlm_dir)
        return payload

    def apply_finetune(self) -> None:
        mode = self.finetune_cfg["mode"]
        if mode == "lora":
            apply_finetune(
                self,
                backbone_attr=VLM_ATTR,
                mode="lora",
                lora=self.finetune_cfg.get("lora") or {},
                train_vision=False,
            )
            # apply_finetune trains everything outside the VLM; keep LeRobot's frozen state_proj.
            for param in self.policy.model.state_proj.parameters():
                param.requires_grad_(self.policy.config.train_state_proj)
        counts = count_parameters(self.policy)
        log.info(
            "SmolVLA (%s): %d of %d parameters trainable.",
            mode,
            counts["trainable"],
            counts["total"],
        )

    def masked_loss(self, batch: dict):
        return smolvla_masked_loss(self.policy, batch)
