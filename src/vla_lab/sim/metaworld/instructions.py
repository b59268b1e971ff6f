"""What the arm is told to do: the training instruction of each Meta-World task and held-out
paraphrases for the instruction-variation test (the RoArm seed's Phase 6.3).

The training instruction is LeRobot's task description (``lerobot.envs.metaworld``
``TASK_DESCRIPTIONS``), the string ``lerobot-eval`` passes as ``task``, so recordings, our
evaluation and LeRobot's evaluator all say the same words. The paraphrases never appear in a
recording: a policy that succeeds under them read the meaning, not the string.
"""

from __future__ import annotations

PARAPHRASES: dict[str, tuple[str, ...]] = {
    "pick-place-v3": (
        "Grab the puck and put it down at the goal",
        "Lift the puck and move it to the target spot",
        "Take the puck to the goal position",
    ),
    "button-press-topdown-v3": (
        "Push the button down from above",
        "Press down on the button",
        "Hit the button from the top",
    ),
    "drawer-open-v3": (
        "Pull the drawer open",
        "Slide the drawer out",
        "Open up the drawer",
    ),
    "drawer-close-v3": (
        "Push the drawer shut",
        "Slide the drawer closed",
        "Close the drawer",
    ),
    "reach-v3": (
        "Move the gripper to the goal",
        "Bring the hand to the target",
        "Reach for the target position",
    ),
    "door-open-v3": (
        "Swing the door open",
        "Pull the door open",
        "Open the door",
    ),
}


def instruction_for(task: str, kind: str = "train", seed: int = 0) -> str:
    """``task``'s training instruction (``kind="train"``) or one of its held-out paraphrases
    (``kind="paraphrase"``, chosen by ``seed``)."""
    from lerobot.envs.metaworld import TASK_DESCRIPTIONS

    if task not in TASK_DESCRIPTIONS:
        raise KeyError(
            f"{task!r} is not a Meta-World task LeRobot knows; e.g. {sorted(TASK_DESCRIPTIONS)[:6]}"
        )
    if kind == "train":
        return TASK_DESCRIPTIONS[task]
    if task not in PARAPHRASES:
        raise KeyError(
            f"no held-out paraphrases for {task!r} (vla_lab.sim.metaworld.instructions has "
            f"{sorted(PARAPHRASES)})"
        )
    options = PARAPHRASES[task]
    return options[seed % len(options)]
