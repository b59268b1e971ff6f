"""The driving Field Agent: SmolVLA whose expert outputs 64 x (acceleration, curvature).

SmolVLA's flow-matching expert predicts Alpamayo-R1-normalised unicycle controls (action dim 2,
chunk 64) from the front camera, the command (`task`) and the ego state; `action_to_traj` (the
differentiable integration layer of `vla_lab.driving.unicycle`) turns controls into the future
trajectory. Training adds a trajectory loss to the flow loss: the one-step estimate of the clean
controls, `x_t - t * v_pred` (LeRobot's flow runs from actions at t=0 to noise at t=1), is
integrated and compared in XY with the logged future (Huber or L2, `head.trajectory_loss`).

Validation samples `model.min_ade_samples` (K) trajectories per frame from the flow head, in one
batch of B*K. The first is the single-sample prediction a deployed model makes (`val/ade`,
`val/fde`, comfort); all K give `val/min_ade@K` and `val/min_fde@K`, the best of K by ADE, as
AR1 reports minADE6. The constant-velocity baseline drives at the state's v0, found by name.

Controls are already normalised by the action space, so LeRobot's action normaliser is identity
here: the expert's outputs are exactly what `action_to_traj` decodes. With
`backbone.pretrained_policy=lerobot/smolvla_base` the VLM and expert keep their weights; the
state and action projections start fresh (`reinit_projections`): their inputs mean something else
for a car than for an arm.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from vla_lab import features as ft
from vla_lab import lerobot_api as lr
from vla_lab.driving import metrics as av_metrics
from vla_lab.driving.metrics import FrameErrors
from vla_lab.driving.unicycle import UnicycleActionSpace, yaw_from_rot
from vla_lab.features import FUTURE_XYZ, HISTORY_ROT, HISTORY_XYZ
from vla_lab.models.lerobot.loss import smolvla_masked_loss
from vla_lab.models.lerobot.smolvla import SmolVLAModule
from vla_lab.models.module import StepOutput

TRAJECTORY_LOSSES = ("huber", "l2")
V0 = "v0"  # the ego-speed dimension of the state, when data.source.state lists it


class SmolVLAUnicycleModule(SmolVLAModule):
    """SmolVLA + unicycle integration layer; `predict_trajectory` gives controls and poses."""

    required_features = [ft.ACTION, ft.STATE, FUTURE_XYZ, HISTORY_XYZ, HISTORY_ROT]
    capabilities = dataclasses.replace(
        SmolVLAModule.capabilities,
        trajectories=True,
        observation_extras=(HISTORY_XYZ, HISTORY_ROT),
    )
    module_head_keys = ("trajectory_loss",)

    def __init__(
        self,
        backbone: DictConfig,
        head: DictConfig,
        finetune: DictConfig,
        optimizer: DictConfig,
        scheduler: DictConfig | None = None,
        head_lr: float | None = None,
        action_space: DictConfig | None = None,
        chunk_size: int = 64,
        n_action_steps: int = 64,
        max_state_dim: int = 32,
        max_action_dim: int = 32,
        tokenizer_max_length: int = 48,
        loss: str = "masked",
        rename_map: dict[str, str] | None = None,
        reinit_projections: bool = True,
        min_ade_samples: int = 6,
        **kwargs,
    ) -> None:
        super().__init__(
            backbone,
            head,
            finetune,
            optimizer,
            scheduler,
            head_lr,
            chunk_size=chunk_size,
            n_action_steps=n_action_steps,
            max_state_dim=max_state_dim,
            max_action_dim=max_action_dim,
            tokenizer_max_length=tokenizer_max_length,
            loss=loss,
            rename_map=rename_map,
            **kwargs,
        )
        if loss != "masked":
            raise ValueError(
                f"model.loss={loss!r}: the unicycle model trains the masked flow loss plus a "
                "trajectory loss; LeRobot's own number (loss=lerobot) has no trajectory term."
            )
        self.action_space = UnicycleActionSpace(**dict(action_space or {}))
        if chunk_size != self.action_space.n_steps:
            raise ValueError(
                f"model.chunk_size={chunk_size} must equal the action space's n_steps="
                f"{self.action_space.n_steps} (one control per integration step)."
            )
        trajectory = dict(self.head_cfg.pop("trajectory_loss", None) or {})
        self.trajectory_loss_type = str(trajectory.get("type", "huber"))
        self.trajectory_loss_weight = float(trajectory.get("weight", 1.0))
        self.huber_delta = float(trajectory.get("huber_delta", 1.0))
        if self.trajectory_loss_type not in TRAJECTORY_LOSSES:
            raise ValueError(
                f"head.trajectory_loss.type={self.trajectory_loss_type!r}; expected one of "
                f"{TRAJECTORY_LOSSES}"
            )
        self.reinit_projections = reinit_projections
        self.min_ade_samples = min_ade_samples

    @property
    def min_ade_samples(self) -> int:
        """K of `val/min_ade@K`: trajectories sampled per frame in validation and evaluation."""
        return self._min_ade_samples

    @min_ade_samples.setter
    def min_ade_samples(self, k: int) -> None:
        if int(k) != k or k < 1:
            raise ValueError(
                f"model.min_ade_samples={k}: give K >= 1 trajectories per frame for "
                "val/min_ade@K (AR1 reports K=6; 1 costs nothing extra and equals val/ade)."
            )
        self._min_ade_samples = int(k)

    # ---- building ----------------------------------------------------------------------------
    def make_config(self, inputs: dict, outputs: dict):
        config = super().make_config(inputs, outputs)
        # Controls arrive normalised by the action space: the expert predicts them as they are.
        config.normalization_mapping = {
            **config.normalization_mapping,
            "ACTION": lr.NormalizationMode.IDENTITY,
        }
        return config

    def make_policy(self, config):
        policy = super().make_policy(config)
        if self.backbone_cfg.get("pretrained_policy") and self.reinit_projections:
            model = policy.model
            for layer in (model.state_proj, model.action_in_proj, model.action_out_proj):
                layer.reset_parameters()
        return policy

    # ---- trajectories ------------------------------------------------------------------------
    def decode(self, action: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised controls (B, 64, 2), or (B, K, 64, 2) for K samples per frame, -> future
        xyz (B, [K,] 64, 3) and rotations (B, [K,] 64, 3, 3). A frame's samples all start from
        its history (the v0 fit is made once per frame)."""
        hist_xyz, hist_rot = batch[HISTORY_XYZ], batch[HISTORY_ROT]
        v0 = self.action_space.estimate_v0(hist_xyz, hist_rot)
        if action.ndim == 4:
            k = action.shape[1]
            hist_xyz = hist_xyz.unsqueeze(1).expand(-1, k, -1, -1)
            hist_rot = hist_rot.unsqueeze(1).expand(-1, k, -1, -1, -1)
            v0 = v0.unsqueeze(1).expand(-1, k)
        return self.action_space.action_to_traj(action, hist_xyz, hist_rot, v0=v0)

    @torch.no_grad()
    def predict_trajectory(self, batch: dict) -> dict[str, torch.Tensor]:
        """One sampled trajectory per frame, as deployed: `action` (B, 64, 2) normalised,
        `controls` (B, 64, 2) in m/s^2 and 1/m, `future_xyz` (B, 64, 3), `future_rot`."""
        return {k: v[:, 0] for k, v in self.sample_trajectories(batch, 1).items()}

    @torch.no_grad()
    def sample_trajectories(self, batch: dict, n_samples: int) -> dict[str, torch.Tensor]:
        """`n_samples` (K) trajectories per frame, each from its own noise, as in
        `predict_trajectory` with a sample axis: `action` (B, K, 64, 2), `future_xyz`
        (B, K, 64, 3), ... Drawn as one batch of B*K, so K costs one call."""
        return self._sample(self.preprocess(batch), batch, n_samples)

    def _sample(self, processed: dict, batch: dict, n_samples: int) -> dict[str, torch.Tensor]:
        action = self._predict_processed(repeat_each(processed, n_samples))
        action = action.unflatten(0, (-1, n_samples))
        future_xyz, future_rot = self.decode(action, batch)
        return {
            "action": action,
            "controls": self.action_space.denormalize(action),
            "future_xyz": future_xyz,
            "future_rot": future_rot,
        }

    def baseline_trajectory(self, batch: dict) -> torch.Tensor:
        """The constant-velocity baseline (B, 64, 3): straight ahead at the state's `v0`, found by
        name (`data.source.state`); a state without it (e.g. [a0, kappa0]) gets the history's
        speed fit, the v0 the model itself decodes from."""
        names = list(self.dataset_features[ft.STATE].names or ())
        if V0 in names:
            v0 = batch[ft.STATE][..., names.index(V0)]
        else:
            v0 = self.action_space.estimate_v0(batch[HISTORY_XYZ], batch[HISTORY_ROT])
        return av_metrics.constant_velocity_rollout(
            v0, self.action_space.n_steps, self.action_space.dt
        )

    def trajectory_loss(self, pred_xy: torch.Tensor, true_xy: torch.Tensor) -> torch.Tensor:
        if self.trajectory_loss_type == "l2":
            return (pred_xy - true_xy).norm(dim=-1).mean()
        return F.huber_loss(pred_xy, true_xy, delta=self.huber_delta)

    # ---- loss and metrics --------------------------------------------------------------------
    def model_step(self, batch: dict) -> StepOutput:
        processed = self.preprocess(batch)
        flow_loss, estimate = flow_loss_and_estimate(self.policy, processed)
        true_xy = batch[FUTURE_XYZ][..., :2]
        estimate_xyz, _ = self.decode(estimate, batch)
        trajectory_loss = self.trajectory_loss(estimate_xyz[..., :2], true_xy)
        loss = flow_loss + self.trajectory_loss_weight * trajectory_loss
        out = StepOutput(
            loss=loss,
            terms={"flow_loss": flow_loss.detach(), "trajectory_loss": trajectory_loss.detach()},
        )
        if not self.training:
            samples = self._sample(processed, batch, self.min_ade_samples)
            out.first_action_pred = samples["action"][:, 0, 0]
            out.first_action_true = batch[ft.ACTION][:, 0]
            out.metrics = trajectory_metrics(
                samples, batch[FUTURE_XYZ], self.baseline_trajectory(batch), self.action_space.dt
            )
        return out


def trajectory_metrics(
    samples: dict[str, torch.Tensor], true_xyz: torch.Tensor, baseline_xyz: torch.Tensor, dt: float
) -> dict[str, torch.Tensor]:
    """Per-frame driving metrics of K samples per frame (`sample_trajectories`), exactly those
    evaluation reports (`FrameErrors.per_frame`): ADE/FDE overall and by horizon and comfort of
    the first sample (one prediction, as deployed), `min_ade@K`/`min_fde@K`, the baseline's."""
    first_yaw = yaw_from_rot(samples["future_rot"][:, 0])
    errors = FrameErrors.of(samples["future_xyz"], first_yaw, true_xyz, baseline_xyz, dt)
    return errors.per_frame(horizons=True)


def repeat_each(batch: dict, n: int) -> dict:
    """Each frame of a policy batch n times in a row (rows b*n .. b*n+n-1 are frame b); values
    without a batch axis (LeRobot's `next.reward`, `info`) stay as they are."""
    if n == 1:  # a deployed prediction: no copies
        return batch
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.ndim > 0:
            out[key] = value.repeat_interleave(n, dim=0)
        elif isinstance(value, list):
            out[key] = [item for item in value for _ in range(n)]
        else:
            out[key] = value
    return out


class _Capture:
    """Keeps the output of a module's next forward call (a forward hook)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.output: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        self.output = output

    def __enter__(self) -> _Capture:
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


def flow_loss_and_estimate(policy, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """SmolVLA's masked flow loss and the one-step estimate of the clean actions
    `x_t - t * v_pred` (B, chunk, action_dim), from the same noise, time and velocity."""
    actions = policy.prepare_action(batch)
    noise = policy.model.sample_noise(actions.shape, actions.device)
    time = policy.model.sample_time(actions.shape[0], actions.device)
    with _Capture(policy.model.action_out_proj) as velocity:
        loss, _ = smolvla_masked_loss(policy, batch, noise, time)
    t = time[:, None, None]
    x_t = t * noise + (1 - t) * actions
    estimate = x_t - t * velocity.output
    return loss, estimate[..., : policy.config.action_feature.shape[0]]
