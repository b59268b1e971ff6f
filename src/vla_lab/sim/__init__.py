"""Simulated worlds (gymnasium envs), their scripted experts and recorders, and the rollout runner.

Importing this package registers the worlds' gymnasium ids (their modules load on first `make`).
"""

import gymnasium as gym

WORLDS = {
    "vla_lab/MobileVLABoxCourse-v0": "vla_lab.sim.mobile_vla.env:BoxCourseEnv",
    "vla_lab/DrivingRoad-v0": "vla_lab.sim.driving.env:RoadEnv",
    "vla_lab/MetaWorld-v0": "vla_lab.sim.metaworld.env:MetaWorldEnv",
}

for _env_id, _entry_point in WORLDS.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point)
