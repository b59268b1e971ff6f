"""Meta-World's scripted expert as an `Agent`, with the noise that makes recordings teach recovery.

Meta-World ships one hand-written policy per task (``metaworld.policies``; LeRobot maps tasks to
them in ``lerobot.envs.metaworld.TASK_POLICY_MAPPING``). It reads the env's true state (object and
goal positions), which a learned policy never sees. With ``noise`` the executed action is the
expert's plus Gaussian noise (std ``noise`` in action units, clipped to [-1, 1]) while
``intended_action()`` stays the expert's own action for the state it saw: recordings then show how
to get back on track from the states a learned policy drifts into (DART, Laskey et al. 2017).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from vla_lab.sim.metaworld.env import MetaWorldEnv


class MetaWorldExpert:
    """Meta-World's policy for ``env``'s current task (the env must have been reset)."""

    def __init__(self, env: MetaWorldEnv, noise: float = 0.0, seed: int | None = None) -> None:
        from lerobot.envs.metaworld import TASK_POLICY_MAPPING

        if noise < 0:
            raise ValueError(f"expert noise must be >= 0, got {noise}")
        self.env = env
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self._policy_classes = TASK_POLICY_MAPPING
        self._policies: dict[str, Any] = {}  # one scripted policy per task, built on first use
        self._intended = np.zeros(4, dtype=np.float32)

    def reset(self) -> None:
        self._intended = np.zeros(4, dtype=np.float32)

    def intended_action(self) -> np.ndarray:
        """The expert's own (noise-free) action for the latest observation."""
        return self._intended.copy()

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        task = self.env.task
        if task not in self._policies:
            self._policies[task] = self._policy_classes[task]()
        policy = self._policies[task]
        self._intended = np.clip(policy.get_action(self.env.true_state()), -1, 1).astype(np.float32)
        if not self.noise:
            return self._intended.copy()
        noisy = self._intended + self.rng.normal(0.0, self.noise, 4)
        return np.clip(noisy, -1.0, 1.0).astype(np.float32)
