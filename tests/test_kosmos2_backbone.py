"""Kosmos-2 backbone on the tiny offline model: build, tokenise, encode, carry in a checkpoint."""

from __future__ import annotations

import logging
import shutil
import socket
from pathlib import Path

import pytest
import torch

from vla_lab.models.backbones import kosmos2_tiny
from vla_lab.models.backbones.kosmos2 import Kosmos2Backbone
from vla_lab.models.backbones.kosmos2_tiny import build_tiny_kosmos2

TASKS = ["Navigate around the box on the left", "right", "Navigate around the two boxes"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("vla_cache")
    build_tiny_kosmos2(cache)
    return cache


@pytest.fixture
def backbone(cache_dir: Path) -> Kosmos2Backbone:
    return Kosmos2Backbone("unused", tiny=True, cache_dir=str(cache_dir)).eval()


def _inputs(backbone: Kosmos2Backbone, n: int = 4, size: tuple[int, int] = (48, 80)):
    torch.manual_seed(1)
    text = backbone.tokenize([TASKS[i % len(TASKS)] for i in range(n)])
    action_token = torch.randn(backbone.hidden_size, requires_grad=True)
    return torch.rand(n, 3, *size), text, action_token


def test_tiny_build_is_offline_and_built_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def no_network(*args, **kwargs):
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    first = build_tiny_kosmos2(tmp_path)
    assert first == tmp_path / kosmos2_tiny.TINY_DIR_NAME
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in first.iterdir()
    }
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp dir left behind"

    def must_not_rebuild(directory: Path) -> None:
        raise AssertionError("the tiny model was rebuilt")

    monkeypatch.setattr(kosmos2_tiny, "_build", must_not_rebuild)
    assert build_tiny_kosmos2(tmp_path) == first


def test_tiny_model_is_small_and_matches_its_processor(backbone: Kosmos2Backbone):
    assert sum(p.numel() for p in backbone.model.parameters()) < 1_000_000
    assert backbone.image_size == (64, 64)
    assert backbone.hidden_size == 64
    text = backbone.tokenize(TASKS[:1])
    assert int(text["image_embeds_position_mask"].sum()) == backbone.model.config.latent_query_num
    assert backbone.model.config.text_config.vocab_size == len(backbone.processor.tokenizer)


def test_tokenize_puts_action_slot_before_eos_and_caches(
    backbone: Kosmos2Backbone, monkeypatch: pytest.MonkeyPatch
):
    text = backbone.tokenize(TASKS)
    eos, pad = backbone.processor.tokenizer.eos_token_id, backbone.processor.tokenizer.pad_token_id
    for row, pos in enumerate(text["action_token_position"].tolist()):
        length = int(text["attention_mask"][row].sum())
        assert pos == length - 2
        assert text["input_ids"][row, pos + 1] == eos
        assert (text["input_ids"][row, length:] == pad).all()
        assert text["image_embeds_position_mask"][row, pos] == 0
    assert text["input_ids"].shape == text["image_embeds_position_mask"].shape

    def must_use_cache(*args, **kwargs):
        raise AssertionError("a repeated instruction was tokenised again")

    monkeypatch.setattr(type(backbone.processor), "__call__", must_use_cache)
    again = backbone.tokenize(list(reversed(TASKS)))
    assert torch.equal(again["input_ids"][0], text["input_ids"][2])


def test_long_instruction_is_truncated_with_a_warning(cache_dir: Path, caplog):
    short = Kosmos2Backbone("unused", tiny=True, cache_dir=str(cache_dir), max_text_tokens=5)
    with caplog.at_level(logging.WARNING):
        text = short.tokenize(["Navigate around the two boxes on the left, then stop"])
    assert "truncated" in caplog.text
    image_slots = short.model.config.latent_query_num
    assert (
        text["input_ids"].shape[1] == 1 + 1 + image_slots + 1 + 5 + 2
    )  # bos, image, text, act, eos


def test_forward_gives_one_feature_per_frame_and_grads_reach_action_token(
    backbone: Kosmos2Backbone,
):
    pixels, text, action_token = _inputs(backbone)  # 48x80 frames get resized to 64x64
    features = backbone(pixels, text, action_token)
    assert features.shape == (4, backbone.hidden_size)
    features.pow(2).sum().backward()
    assert action_token.grad is not None and action_token.grad.abs().sum() > 0
    vision_weight = backbone.model.vision_model.model.embeddings.patch_embedding.weight
    assert vision_weight.grad is not None and vision_weight.grad.abs().sum() > 0


def test_action_token_changes_the_feature(backbone: Kosmos2Backbone):
    pixels, text, action_token = _inputs(backbone)
    with torch.no_grad():
        a = backbone(pixels, text, action_token)
        b = backbone(pixels, text, torch.zeros_like(action_token))
    assert not torch.allclose(a, b)


def test_forward_runs_under_bf16_autocast(backbone: Kosmos2Backbone):
    pixels, text, action_token = _inputs(backbone)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = backbone(pixels, text, action_token)
    features.float().sum().backward()
    assert features.shape == (4, backbone.hidden_size)
    assert torch.isfinite(action_token.grad).all()


def test_bf16_weights_give_float32_features(cache_dir: Path):
    backbone = Kosmos2Backbone(
        "unused", tiny=True, cache_dir=str(cache_dir), torch_dtype="bfloat16"
    )
    assert backbone.model.dtype == torch.bfloat16
    pixels, text, action_token = _inputs(backbone)
    features = backbone(pixels, text, action_token)
    assert features.dtype == torch.float32 and torch.isfinite(features).all()


def test_checkpoint_files_rebuild_the_backbone_without_the_original_dir(
    cache_dir: Path, tmp_path: Path
):
    original_dir = tmp_path / "kosmos_copy"
    shutil.copytree(cache_dir / kosmos2_tiny.TINY_DIR_NAME, original_dir)
    original = Kosmos2Backbone(str(original_dir), cache_dir=str(tmp_path / "cache")).eval()
    files, state = original.export_files(), original.state_dict()
    assert "config.json" in files and "tokenizer.json" in files
    assert not any(name.endswith(".safetensors") for name in files)
    shutil.rmtree(original_dir)

    restored = Kosmos2Backbone.from_files(files, cache_dir=str(tmp_path / "cache")).eval()
    restored.load_state_dict(state)
    pixels, text, action_token = _inputs(original)
    assert torch.equal(restored.tokenize(TASKS)["input_ids"], original.tokenize(TASKS)["input_ids"])
    with torch.no_grad():
        assert torch.allclose(
            restored(pixels, text, action_token), original(pixels, text, action_token)
        )
    again = Kosmos2Backbone.from_files(files, cache_dir=str(tmp_path / "cache"))
    assert again.pretrained_dir == restored.pretrained_dir  # content-hashed, written once


def test_gradient_checkpointing_is_really_on_and_gives_the_same_gradients(cache_dir: Path):
    plain = Kosmos2Backbone("unused", tiny=True, cache_dir=str(cache_dir)).train()
    ckpt = Kosmos2Backbone(
        "unused", tiny=True, cache_dir=str(cache_dir), gradient_checkpointing=True
    ).train()
    assert ckpt.model.text_model.model.gradient_checkpointing
    assert ckpt.model.vision_model.model.encoder.gradient_checkpointing
    assert not plain.model.text_model.model.gradient_checkpointing

    # Pre-hooks: non-reentrant recomputation stops early, before a layer's forward hooks fire.
    calls = {"text": 0, "vision": 0}
    ckpt.model.text_model.model.layers[0].register_forward_pre_hook(
        lambda *args: calls.__setitem__("text", calls["text"] + 1)
    )
    ckpt.model.vision_model.model.encoder.layers[0].register_forward_pre_hook(
        lambda *args: calls.__setitem__("vision", calls["vision"] + 1)
    )
    grads = []
    for backbone in (plain, ckpt):
        pixels, text, action_token = _inputs(backbone)
        torch.manual_seed(7)  # same dropout masks in both runs
        backbone(pixels, text, action_token).pow(2).sum().backward()
        grads.append([action_token.grad] + [p.grad for p in backbone.model.parameters()])
    assert calls == {"text": 2, "vision": 2}, "layers not recomputed in backward"
    for g_plain, g_ckpt in zip(*grads, strict=True):
        assert torch.allclose(g_plain, g_ckpt, atol=1e-6)


def test_unknown_pretrained_says_how_to_work_offline(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="kosmos2_tiny") as info:
        Kosmos2Backbone(str(tmp_path / "no_such_model"), cache_dir=str(tmp_path))
    assert "no_such_model" in str(info.value)
