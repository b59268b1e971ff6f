"""A world's scripted expert recorded as a LeRobot v3 dataset, with LeRobot's own writer.

Whatever reads LeRobot datasets reads the recording: our training (``data.source.root``), LeRobot's
tools and training, the hub. Each observation key becomes a feature (uint8 frames as video,
vectors as float32), the expert's action is ``action``, the instruction is the frame's ``task``.

With ``noise`` the executed action is perturbed while the recorded one is the expert's own for
the state it saw (`intended_action`), so the data shows recoveries (DART). Episode ``i`` is the
world's episode of seed ``seed + i`` and scenario ``scenarios[i % n]`` (``episode_specs``): seeds
``seed .. seed + episodes - 1`` are the recording's, keep evaluation seeds away from them.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from vla_lab.features import ACTION, TASK
from vla_lab.sim.base import episode_specs
from vla_lab.sim.runner import make_env, world
from vla_lab.utils.io import atomic_write_dir

log = logging.getLogger(__name__)


def record_lerobot_dataset(
    root: str | Path,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    episodes: int = 50,
    scenarios: list[str] | None = None,
    seed: int = 0,
    noise: float = 0.0,
    robot_type: str | None = None,
) -> Path:
    """Record ``episodes`` expert episodes of ``env_id`` into the LeRobot dataset ``root``
    (which must not exist yet; written beside it and renamed in, so never half a dataset)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    root = Path(root)
    if (root / "meta" / "info.json").is_file():
        raise FileExistsError(f"{root} already holds a LeRobot dataset; record into a new root")
    atomic_write_dir(
        root,
        lambda tmp: _record(
            tmp, env_id, env_kwargs or {}, episodes, scenarios, seed, noise, robot_type
        ),
        done=lambda path: (path / "meta" / "info.json").is_file(),
    )
    return root


def _record(
    path: Path,
    env_id: str,
    env_kwargs: dict[str, Any],
    episodes: int,
    scenarios: list[str] | None,
    seed: int,
    noise: float,
    robot_type: str | None,
) -> None:
    from vla_lab.lerobot_api import LeRobotDataset

    env = make_env(env_id, env_kwargs)
    sim = world(env)
    specs = episode_specs(list(scenarios or sim.scenarios), episodes, seed)
    fps = int(round(sim.metadata["render_fps"]))
    dataset = None
    successes = 0
    for spec in specs:
        observation, _ = env.reset(seed=spec.seed, options={"scenario": spec.scenario})
        expert = sim.expert(noise=noise, seed=spec.seed)
        if dataset is None:
            features = _features(observation, env.action_space.shape)
            dataset = LeRobotDataset.create(
                env_id.replace("/", "_"),
                fps=fps,
                features=features,
                root=path,
                robot_type=robot_type,
                use_videos=True,
            )
        done = False
        while not done:
            executed = expert.act(observation)
            dataset.add_frame({**observation, ACTION: expert.intended_action()})
            observation, _, terminated, truncated, _ = env.step(executed)
            done = terminated or truncated
        successes += int(sim.episode_metrics()["success"] >= 0.5)
        dataset.save_episode()
    dataset.finalize()
    env.close()
    shutil.rmtree(path / "images", ignore_errors=True)  # LeRobot's emptied PNG staging dir
    log.info(
        "Recorded %d expert episodes of %s (%d succeeded, noise %.2f)",
        len(specs),
        env_id,
        successes,
        noise,
    )


def _features(observation: dict[str, Any], action_shape: tuple[int, ...]) -> dict[str, dict]:
    """LeRobot features of a world's observation: frames as video, vectors as float32."""
    features: dict[str, dict] = {}
    for key, value in observation.items():
        if key == TASK:
            continue
        array = np.asarray(value)
        if array.dtype == np.uint8 and array.ndim == 3:
            names = ["height", "width", "channels"]
            features[key] = {"dtype": "video", "shape": array.shape, "names": names}
        elif array.ndim == 1 and np.issubdtype(array.dtype, np.floating):
            features[key] = {"dtype": "float32", "shape": array.shape, "names": None}
        else:
            raise ValueError(
                f"observation key {key!r} ({array.dtype}, shape {array.shape}) has no LeRobot "
                "feature: only uint8 (H, W, 3) frames and float vectors are recorded"
            )
    features[ACTION] = {"dtype": "float32", "shape": tuple(action_shape), "names": None}
    return features
