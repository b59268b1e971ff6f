"""How a finished drive of the road world is scored: NAVSIM's PDM score and its parts
(`vla_lab.driving.pdms`), lane keeping and command following, and the success verdict.

- `lane_keeping`: the fraction of steps with the ego centre (rear axle) within 0.5 m of some
  lane centre (a lane change spends a few seconds outside; a weaving car much longer).
- `command_followed`: 1 if the drive did what the scenario's commands asked
  (`scenarios.command_followed`).
- `success`: PDMS >= `SUCCESS_PDMS` (0.8: a collision or leaving the road is 0, a slow but clean
  drive of half the expert's progress scores 0.79) and the commands followed.
"""

from __future__ import annotations

import numpy as np

from vla_lab.driving import pdms
from vla_lab.sim.driving.road import Road
from vla_lab.sim.driving.scenarios import EGO_FOOTPRINT, command_followed, in_any_lane
from vla_lab.sim.driving.world import RoadWorld

SUCCESS_PDMS = 0.8
LOW_PROGRESS = 0.8  # EP below this names "low_progress" as the reason a drive failed


def score(world: RoadWorld, expert_progress_m: float, success_pdms: float = SUCCESS_PDMS) -> dict:
    """The finished episode's metrics, `success` first (all floats)."""
    states, s, d = world.driven()
    episode = world.episode
    trucks = np.array([b.corners() for b in episode.trucks]).reshape(-1, 4, 2)
    corners = world.corners(states)
    road = episode.road
    offsets = np.array(
        [road.frenet(c[:, 0], c[:, 1], h)[1] for c, h in zip(corners, s, strict=True)]
    )
    parts = {
        "nc": pdms.no_collision(corners, trucks),
        "dac": pdms.drivable_area_compliance(offsets, Road.surface_m()),
        "ep": pdms.ego_progress(float(s[-1] - s[0]), expert_progress_m),
        "ttc": pdms.time_to_collision_ok(states, trucks, EGO_FOOTPRINT, world.dt),
        "comfort": pdms.comfort_ok(states, world.dt),
    }
    score = pdms.pdms(parts["nc"], parts["dac"], parts["ttc"], parts["ep"], parts["comfort"])
    followed = float(command_followed(episode, s, d, states[:, 3]))
    return {
        "success": float(score >= success_pdms and followed == 1.0),
        "pdms": score,
        **parts,
        "lane_keeping": float(in_any_lane(d).mean()),
        "command_followed": followed,
        "progress_m": float(s[-1] - s[0]),
    }


def failure_reason(metrics: dict) -> str:
    """Why a scored episode failed, the gravest reason first; "" on success."""
    if metrics["success"]:
        return ""
    if metrics["nc"] == 0:
        return "collision"
    if metrics["dac"] == 0:
        return "off_road"
    if metrics["command_followed"] == 0:
        return "command_not_followed"
    if metrics["ep"] < LOW_PROGRESS:
        return "low_progress"
    return "low_score"
