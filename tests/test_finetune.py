"""Fine-tuning modes on a tiny Kosmos-2 policy: which parameters train, and LoRA really wired in."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from vla_lab.models.backbones.kosmos2 import Kosmos2Backbone
from vla_lab.models.backbones.kosmos2_tiny import build_tiny_kosmos2
from vla_lab.models.finetune import apply_finetune, count_parameters

TASKS = ["Navigate around the box on the left", "right"]


class TinyPolicy(nn.Module):
    """The shape of a real policy: a backbone, an action token and a head."""

    def __init__(self, cache_dir: Path) -> None:
        super().__init__()
        self.backbone = Kosmos2Backbone("unused", tiny=True, cache_dir=str(cache_dir))
        self.action_token = nn.Parameter(torch.zeros(self.backbone.hidden_size))
        self.head = nn.Linear(self.backbone.hidden_size, 2)

    def forward(self, pixels: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.backbone(pixels, text, self.action_token))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("vla_cache")
    build_tiny_kosmos2(cache)
    return cache


@pytest.fixture
def policy(cache_dir: Path) -> TinyPolicy:
    return TinyPolicy(cache_dir)


def _trainable(module: nn.Module) -> set[str]:
    return {name for name, p in module.named_parameters() if p.requires_grad}


def _batch(policy: TinyPolicy) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    return torch.rand(2, 3, 64, 64), policy.backbone.tokenize(TASKS)


NON_BACKBONE = {"action_token", "head.weight", "head.bias"}


def test_full_trains_everything(policy: TinyPolicy):
    counts = apply_finetune(policy, mode="full")
    assert _trainable(policy) == {name for name, _ in policy.named_parameters()}
    assert counts == count_parameters(policy)
    assert counts["trainable"] == counts["total"]


def test_full_without_vision_freezes_only_the_vision_tower(policy: TinyPolicy):
    apply_finetune(policy, mode="full", train_vision=False)
    frozen = {name for name, _ in policy.named_parameters()} - _trainable(policy)
    assert frozen and all(name.startswith("backbone.model.vision_model.") for name in frozen)
    assert "backbone.model.image_to_text_projection.dense.weight" in _trainable(policy)
    assert "backbone.model.text_model.model.layers.0.ffn.fc1.weight" in _trainable(policy)


def test_frozen_trains_only_head_and_action_token(policy: TinyPolicy):
    counts = apply_finetune(policy, mode="frozen")
    assert _trainable(policy) == NON_BACKBONE
    assert counts["trainable"] == policy.backbone.hidden_size + policy.head.weight.numel() + 2


def test_lora_trains_adapters_on_the_language_model_only(policy: TinyPolicy):
    apply_finetune(policy, mode="lora", lora={"r": 4, "alpha": 8, "dropout": 0.0})
    adapters = _trainable(policy) - NON_BACKBONE
    assert NON_BACKBONE <= _trainable(policy)
    assert adapters and all("lora_A" in name or "lora_B" in name for name in adapters)
    assert all(".text_model." in name for name in adapters)
    projections = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in adapters} == set(projections)


def test_lora_with_vision_also_adapts_the_vision_tower(policy: TinyPolicy):
    apply_finetune(policy, mode="lora", lora={"r": 4, "vision": True})
    adapters = _trainable(policy) - NON_BACKBONE
    assert any(".vision_model." in name for name in adapters)
    assert any(".text_model." in name for name in adapters)
    assert all("lora_" in name for name in adapters)


def test_lora_accepts_a_list_or_a_regex_of_targets(cache_dir: Path):
    by_list = TinyPolicy(cache_dir)
    apply_finetune(by_list, mode="lora", lora={"r": 2, "target_modules": ["q_proj", "v_proj"]})
    by_regex = TinyPolicy(cache_dir)
    regex = r".*text_model.*\.(q_proj|v_proj)$"
    apply_finetune(by_regex, mode="lora", lora={"r": 2, "target_modules": regex})
    assert _trainable(by_list) == _trainable(by_regex)
    assert all("q_proj" in n or "v_proj" in n for n in _trainable(by_list) - NON_BACKBONE)


def test_lora_adapters_change_the_output_after_a_step(policy: TinyPolicy):
    apply_finetune(policy, mode="lora", lora={"r": 4, "alpha": 8, "dropout": 0.0})
    policy.eval()
    pixels, text = _batch(policy)
    adapter_params = [p for n, p in policy.named_parameters() if "lora_" in n]
    with torch.no_grad():
        before = policy.backbone(pixels, text, policy.action_token)
    optimizer = torch.optim.SGD(adapter_params, lr=0.5)
    policy.backbone(pixels, text, torch.randn_like(policy.action_token)).pow(2).sum().backward()
    optimizer.step()
    with torch.no_grad():
        after = policy.backbone(pixels, text, policy.action_token)
    assert not torch.allclose(before, after)


def test_lora_state_dict_loads_into_a_module_built_the_same_way(cache_dir: Path):
    settings = {"r": 4, "alpha": 8, "dropout": 0.0}
    trained = TinyPolicy(cache_dir)
    apply_finetune(trained, mode="lora", lora=settings)
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if "lora_B" in name:
                param.normal_()  # B starts at zero; make the adapters matter
    fresh = TinyPolicy(cache_dir)
    apply_finetune(fresh, mode="lora", lora=settings)
    fresh.load_state_dict(trained.state_dict())
    pixels, text = _batch(trained)
    trained.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.allclose(trained(pixels, text), fresh(pixels, text))


def test_unknown_mode_lists_the_valid_ones(policy: TinyPolicy):
    with pytest.raises(ValueError, match="full, frozen, lora"):
        apply_finetune(policy, mode="qlora")


def test_missing_backbone_attribute_is_named(policy: TinyPolicy):
    with pytest.raises(AttributeError, match="vlm.model"):
        apply_finetune(policy, backbone_attr="vlm", mode="frozen")
