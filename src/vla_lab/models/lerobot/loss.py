"""Loss modes of the LeRobot policies: `masked` (our default) and `lerobot` (parity).

`masked` recomputes the loss from the unreduced per-element losses and averages over real
elements only (steps inside the episode, the policy's real action dimensions); `lerobot` calls
`policy.forward` as lerobot-train does, so numbers compare with its logs.

LeRobot 0.4.4 averaged over padding too (ACT's L1 over steps past the episode end, lerobot
#3353; SmolVLA over the zero-padded action dimensions and, through a typo, past the episode end,
#1707). LeRobot 0.6.1 masks both, so there the two modes give the same number for ACT and SmolVLA
(measured equal on the demo batch, `benchmarks/stack_reference.py`); `masked` stays the
definition we train on, for policies whose own reduction is not known to be right.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vla_lab.features import ACTION, ACTION_IS_PAD

LOSS_MODES = ("masked", "lerobot")
OBS_IMAGES = "observation.images"  # the list of camera tensors ACT's model reads
LANGUAGE_TOKENS = "observation.language.tokens"
LANGUAGE_MASK = "observation.language.attention_mask"


def check_loss_mode(loss: str) -> str:
    if loss not in LOSS_MODES:
        raise ValueError(
            f"Unknown model.loss {loss!r}; valid: {', '.join(LOSS_MODES)} (masked: padding "
            "excluded; lerobot: LeRobot's own number, for parity with lerobot-train)."
        )
    return loss


def masked_mean(per_element: torch.Tensor, batch: dict, action_dim: int) -> torch.Tensor:
    """Mean of `(B, T, D)` losses over real steps (`~action_is_pad`) and the first
    `action_dim` dims."""
    values = per_element[:, :, :action_dim]
    pad = batch.get(ACTION_IS_PAD)
    if pad is None:
        return values.mean()
    valid = (~pad.bool()).to(values.dtype).unsqueeze(-1)  # (B, T, 1)
    return (values * valid).sum() / (valid.sum() * action_dim).clamp(min=1)


def lerobot_loss(policy, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Exactly `policy.forward(batch)` of the installed LeRobot on a preprocessed batch.

    One exception: in eval mode LeRobot's ACT with a VAE cannot run its `forward` (the KL term
    needs the latent that only training computes; lerobot-train never validates). There the
    loss is LeRobot's L1 term alone, computed as LeRobot computes it.
    """
    if not policy.training and getattr(policy.config, "use_vae", False):
        inputs = dict(batch)
        inputs[OBS_IMAGES] = [batch[key] for key in policy.config.image_features]
        actions_hat, _ = policy.model(inputs)
        is_real = ~batch[ACTION_IS_PAD].unsqueeze(-1)
        l1_loss = (F.l1_loss(batch[ACTION], actions_hat, reduction="none") * is_real).mean()
        return l1_loss, {"l1_loss": l1_loss.detach()}
    loss, info = policy.forward(batch)
    # `info` repeats the total as "loss": the module logs that one as train/loss already.
    terms = {
        k: torch.as_tensor(v)
        for k, v in (info or {}).items()  # Diffusion Policy returns no info
        if k != "loss" and isinstance(v, int | float)
    }
    return loss, terms


def act_masked_loss(policy, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """ACT's L1 over real chunk steps, plus `kl_weight` * KL of the VAE latent when it has one.

    `batch` is preprocessed (normalised), as for `ACTPolicy.forward`; the KL term is LeRobot's
    (summed over latent dims, mean over the batch).
    """
    config = policy.config
    inputs = dict(batch)
    if config.image_features:
        inputs[OBS_IMAGES] = [batch[key] for key in config.image_features]
    actions_hat, (mu, log_sigma_x2) = policy.model(inputs)
    l1 = F.l1_loss(actions_hat, batch[ACTION], reduction="none")
    l1_loss = masked_mean(l1, batch, l1.shape[-1])
    terms = {"l1_loss": l1_loss.detach()}
    if not config.use_vae or mu is None:
        return l1_loss, terms
    kld = (-0.5 * (1 + log_sigma_x2 - mu.pow(2) - log_sigma_x2.exp())).sum(-1).mean()
    terms["kld_loss"] = kld.detach()
    return l1_loss + config.kl_weight * kld, terms


def smolvla_masked_loss(
    policy, batch: dict, noise: torch.Tensor | None = None, time: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SmolVLA's flow-matching MSE over real chunk steps and real action dims (not the padding
    to `max_action_dim`). `batch` is preprocessed (normalised, tokenised)."""
    images, img_masks = policy.prepare_images(batch)
    state = policy.prepare_state(batch)
    actions = policy.prepare_action(batch)
    losses = policy.model.forward(
        images,
        img_masks,
        batch[LANGUAGE_TOKENS],
        batch[LANGUAGE_MASK],
        state,
        actions,
        noise,
        time,
    )  # (B, chunk_size, max_action_dim)
    loss = masked_mean(losses, batch, policy.config.action_feature.shape[0])
    return loss, {"flow_loss": loss.detach()}
