"""Meta-World through LeRobot, as a vla_lab world (id ``vla_lab/MetaWorld-v0``).

The arm world of closed-loop evaluation is LeRobot's own: each task's env is built by LeRobot's
env config and factory (``lerobot.envs.factory.make_env(MetaworldEnv(task=...))``), the very
env ``lerobot-eval --env.type=metaworld`` steps, so an episode seed means the same object and goal
positions here and there. This class only adds what our runner needs on top: several tasks as
scenarios, observations under the data contract's keys, the task's sub-goals as metrics, the
scripted expert (Meta-World's own per-task policy, which reads the true 39-number state) and,
for CPU budgets, a cheaper render.

Observations: ``observation.image`` (the ``corner2`` camera, uint8 RGB, LeRobot's key for
Meta-World), ``observation.state`` (LeRobot's ``agent_pos``: hand xyz and gripper opening) and
``task`` (the instruction). Actions: Meta-World's 4 numbers in [-1, 1] (hand displacement xyz,
gripper effort), one 12.5 ms control step (80 Hz, LeRobot's fps for Meta-World).

Rendering: LeRobot renders 480x480 with MuJoCo's shadows and reflections, ~175 ms a frame on two
CPU cores (llvmpipe; the shadow maps are most of it). ``image_size`` renders at that size instead
and ``shadows=False`` drops shadows and reflections: ~35 ms at 96x96 here. The defaults are
LeRobot's, so a comparison with ``lerobot-eval`` sees the same pixels; demo data and its
evaluation use the cheap render, consistently.

Success is Meta-World's (``info["success"]``), the episode ends at the first success, as in
LeRobot, or is truncated at ``max_steps`` (LeRobot: 500). Sub-goals, from Meta-World's info:
``reached`` (the gripper came within 3 cm of the object) and ``grasped``, each as Meta-World
defines it for the task (pick-place: the object lifted in the closed gripper; success = placed
within 7 cm of the goal), plus LeRobot's ``sum_reward`` / ``max_reward`` per episode.
"""

from __future__ import annotations

import os
import string
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from vla_lab.features import STATE, TASK
from vla_lab.sim.base import SimEnv
from vla_lab.sim.metaworld.expert import MetaWorldExpert
from vla_lab.sim.metaworld.instructions import instruction_for

# MuJoCo renders off-screen through EGL unless the user chose otherwise (osmesa, glfw); gymnasium
# reads this when it builds the renderer, MuJoCo when it is imported.
os.environ.setdefault("MUJOCO_GL", "egl")

CAMERA_KEY = "observation.image"  # LeRobot's key for Meta-World's single camera
LEROBOT_MAX_STEPS = 500  # LeRobot's MetaworldEnv._max_episode_steps (Meta-World's path length)
FPS = 80  # LeRobot's MetaworldEnv fps: 5 MuJoCo steps of 2.5 ms per control step


def lerobot_metaworld_env(task: str):
    """LeRobot's Meta-World env for ``task``, from LeRobot's env config and factory."""
    from lerobot.envs.configs import MetaworldEnv as MetaworldEnvConfig
    from lerobot.envs.factory import make_env

    config = MetaworldEnvConfig(task=task, obs_type="pixels_agent_pos")
    vector_env = make_env(config, n_envs=1)[task][0]
    return vector_env.envs[0]


class MetaWorldEnv(SimEnv):
    """One Meta-World episode per ``reset(seed=, options={"scenario": <task>})``.

    ``tasks``: Meta-World v3 task names, the world's scenarios. ``instructions``: ``train``
    (LeRobot's task descriptions, what the recordings say) or ``paraphrase`` (held-out wordings,
    episode seed picks one). ``image_size`` / ``shadows``: see the module docstring.
    """

    score_metric = "max_reward"  # among failures, those that never got close are the worst
    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "render_fps": FPS,
        "dt_s": 1.0 / FPS,
    }

    def __init__(
        self,
        tasks: list[str] | tuple[str, ...] = ("pick-place-v3",),
        image_size: int | None = None,
        shadows: bool = True,
        max_steps: int = LEROBOT_MAX_STEPS,
        instructions: str = "train",
        render_mode: str | None = "rgb_array",
    ) -> None:
        if not tasks:
            raise ValueError("MetaWorldEnv needs at least one task (env.kwargs.tasks)")
        if instructions not in ("train", "paraphrase"):
            raise ValueError(f"instructions must be 'train' or 'paraphrase', got {instructions!r}")
        if not 1 <= max_steps <= LEROBOT_MAX_STEPS:
            raise ValueError(f"max_steps must be in [1, {LEROBOT_MAX_STEPS}], got {max_steps}")
        self.scenarios = tuple(str(t) for t in tasks)
        self.image_size = None if image_size is None else int(image_size)
        self.shadows = bool(shadows)
        self.max_steps = int(max_steps)
        self.instructions = instructions
        self.render_mode = render_mode
        for task in self.scenarios:
            instruction_for(task, instructions, 0)  # unknown tasks fail here, naming the task
        self._envs: dict[str, Any] = {}
        size = self.image_size or 480
        self.observation_space = spaces.Dict(
            {
                CAMERA_KEY: spaces.Box(0, 255, (size, size, 3), np.uint8),
                STATE: spaces.Box(-np.inf, np.inf, (4,), np.float32),
                TASK: spaces.Text(max_length=256, charset=string.printable),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.task = self.scenarios[0]
        self.instruction = ""
        self._running = False

    # ---- the LeRobot env of each task ------------------------------------------------------
    def _env(self, task: str):
        if task not in self._envs:
            self._envs[task] = lerobot_metaworld_env(task)
        return self._envs[task]

    def _configure_render(self, lerobot_env) -> None:
        """The cheaper render, once per MuJoCo env (LeRobot builds it at the first reset)."""
        inner = lerobot_env._env
        if getattr(inner, "_vla_lab_render", None) is not None:
            return
        if self.image_size is not None and self.image_size != inner.width:
            from gymnasium.envs.mujoco.mujoco_rendering import MujocoRenderer

            inner.mujoco_renderer.close()
            inner.width = inner.height = self.image_size
            inner.mujoco_renderer = MujocoRenderer(
                inner.model,
                inner.data,
                width=self.image_size,
                height=self.image_size,
                camera_name=lerobot_env.camera_name,
            )
        if not self.shadows:
            import mujoco

            viewer = inner.mujoco_renderer._get_viewer("rgb_array")
            viewer.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            viewer.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        inner._vla_lab_render = (self.image_size, self.shadows)

    # ---- gymnasium -------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        task = (options or {}).get("scenario")
        if task is None:
            task = self.scenarios[int(self.np_random.integers(len(self.scenarios)))]
        if task not in self.scenarios:
            raise ValueError(f"scenario {task!r} is not a task of this env: {self.scenarios}")
        self.task = str(task)
        lerobot_env = self._env(self.task)
        try:
            lerobot_env._ensure_env()
            self._configure_render(lerobot_env)
            raw, _ = lerobot_env.reset(seed=seed)
        except Exception as error:
            if "GL" not in type(error).__name__ + str(error):
                raise
            raise RuntimeError(
                f"Meta-World cannot render off-screen here (MUJOCO_GL={os.environ['MUJOCO_GL']}): "
                "install EGL and Mesa's drivers (Debian/Ubuntu: apt install libegl1 "
                f"libgl1-mesa-dri), or set MUJOCO_GL=osmesa with libosmesa6; {error}"
            ) from error
        self.instruction = instruction_for(self.task, self.instructions, seed or 0)
        self._steps, self._sum_reward, self._max_reward = 0, 0.0, float("-inf")
        self._reached = self._grasped = self._success = False
        self._obj_to_target = float("nan")
        self._running = True
        self._raw = raw
        return self._observation(raw), {"scenario": self.task}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if not self._running:
            raise RuntimeError("step() needs reset() first, and after every finished episode")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (4,) or not np.isfinite(action).all():
            raise ValueError(
                f"MetaWorldEnv action must be 4 finite numbers (dx, dy, dz, gripper), got "
                f"{action.tolist()}"
            )
        raw, reward, terminated, truncated, info = self._envs[self.task].step(
            np.clip(action, -1.0, 1.0)
        )
        self._steps += 1
        self._sum_reward += float(reward)
        self._max_reward = max(self._max_reward, float(reward))
        self._reached |= bool(info.get("near_object", 0.0))
        self._grasped |= bool(info.get("grasp_success", 0.0))
        self._success = bool(info.get("is_success", False))
        self._obj_to_target = float(info.get("obj_to_target", float("nan")))
        truncated = bool(truncated) or self._steps >= self.max_steps
        terminated = bool(terminated) or self._success
        self._running = not (terminated or truncated)
        self._raw = raw
        return self._observation(raw), float(reward), terminated, truncated, info

    def _observation(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {
            CAMERA_KEY: np.ascontiguousarray(raw["pixels"]),
            STATE: np.asarray(raw["agent_pos"], dtype=np.float32),
            TASK: self.instruction,
        }

    def render(self) -> np.ndarray:
        """The current camera frame (the observation's image)."""
        return np.ascontiguousarray(self._raw["pixels"])

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    # ---- outcome ---------------------------------------------------------------------------
    def episode_metrics(self) -> dict[str, float]:
        return {
            "success": float(self._success),
            "reached": float(self._reached),
            "grasped": float(self._grasped),
            "obj_to_target_m": self._obj_to_target,
            "sum_reward": self._sum_reward,
            "max_reward": self._max_reward if self._steps else 0.0,
            "steps": float(self._steps),
        }

    def failure_reason(self) -> str:
        """ "" on success; else how far it got: never reached the object, reached but never
        grasped it (tasks that grasp), or got there and still timed out."""
        if self._success:
            return ""
        if not self._reached:
            return "not_reached"
        if not self._grasped and "pick" in self.task:
            return "not_grasped"
        return "timeout"

    def true_state(self) -> np.ndarray:
        """Meta-World's full 39-number observation (hand, gripper, objects, goal): what the
        scripted expert reads; a policy never sees it."""
        return np.asarray(self._envs[self.task]._env._get_obs(), dtype=np.float64)

    def expert(self, noise: float = 0.0, seed: int | None = None) -> MetaWorldExpert:
        """Meta-World's scripted policy for the current task (see ``MetaWorldExpert``)."""
        return MetaWorldExpert(self, noise=noise, seed=seed)
