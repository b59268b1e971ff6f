"""What a Mobile VLA file name says about its episode, and the instruction built from it.

File names carry the scenario (see ``/work/shared/reference/mobile_vla_h5.md``)::

    episode_20250101_120000_1box_vert_left.h5                 collector, 8 scenarios
    episode_20250101_120000_2box_hori_right_core_close.h5     newer collector names
    episode_20250101_120000_1box_vert_left_50cm.h5            guide style

Parsing is token based and forgiving: known tokens fill named fields wherever they appear, anything
else is kept under ``extra`` as free-form metadata, never an error. Most users' left/right mistakes
come from instructions that do not name the side, so the built instruction always names it.
"""

from __future__ import annotations

import re
from pathlib import Path

BOXES = ("1box", "2box")
ORIENTATIONS = ("vert", "hori")
SIDES = ("left", "right")
VARIANTS = ("core", "variant")
DISTANCES = ("close", "medium", "far")
UNKNOWN_SCENARIO = "unknown"

DEFAULT_INSTRUCTION_TEMPLATE = "Navigate around the {boxes} on the {side}"
FALLBACK_INSTRUCTION = "Navigate to the goal"

_BOX_PHRASES = {"1box": "box", "2box": "two boxes"}
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{6}$")
_CENTIMETRES = re.compile(r"^\d+(\.\d+)?cm$")
_SIDE_WORD = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def parse_scenario(name: str | Path) -> dict[str, str]:
    """Scenario fields of an episode file name (or a bare scenario string like ``1box_vert_left``).

    Returns a dict with whichever of ``boxes``, ``orientation``, ``side``, ``variant``,
    ``distance``, ``date``, ``time`` the name holds, ``extra`` (unknown tokens joined by ``_``,
    possibly empty) and ``scenario``: the stratification key ``<boxes>_<orientation>_<side>`` made
    of the parts present, or ``"unknown"`` when none is.
    """
    stem = Path(str(name)).stem if str(name).endswith((".h5", ".hdf5")) else Path(str(name)).name
    fields: dict[str, str] = {}
    extra: list[str] = []
    for token in stem.split("_"):
        lower = token.lower()
        if lower == "episode" and not fields and not extra:
            continue
        slot = _slot_of(lower, fields)
        if slot is None:
            extra.append(token)
        else:
            fields[slot] = lower
    parts = [fields[key] for key in ("boxes", "orientation", "side") if key in fields]
    fields["scenario"] = "_".join(parts) if parts else UNKNOWN_SCENARIO
    fields["extra"] = "_".join(extra)
    return fields


def _slot_of(token: str, filled: dict[str, str]) -> str | None:
    """Which named field a token fills; ``None`` for unknown tokens or a field already filled."""
    if token in BOXES:
        slot = "boxes"
    elif token in ORIENTATIONS:
        slot = "orientation"
    elif token in SIDES:
        slot = "side"
    elif token in VARIANTS:
        slot = "variant"
    elif token in DISTANCES or _CENTIMETRES.match(token):
        slot = "distance"
    elif _DATE.match(token):
        slot = "date"
    elif _TIME.match(token):
        slot = "time"
    else:
        return None
    return None if slot in filled else slot


def build_instruction(scenario: dict[str, str], template: str | None = None) -> str:
    """The language instruction for an episode without a stored ``language_instruction``.

    ``template`` is a ``str.format`` string over ``{boxes}`` ("box" / "two boxes"), ``{side}``,
    ``{orientation}``, ``{distance}``, ``{scenario}`` and the other parsed fields; when the name
    lacks a field the template needs, the generic "Navigate to the goal" is returned rather than
    an instruction with a hole in it (which a model would learn as a token).
    """
    template = template or DEFAULT_INSTRUCTION_TEMPLATE
    values = dict(scenario)
    if "boxes" in values:
        values["boxes"] = _BOX_PHRASES.get(values["boxes"], values["boxes"])
    try:
        return template.format(**values)
    except (KeyError, IndexError):
        return FALLBACK_INSTRUCTION


def swap_sides(text: str) -> str:
    """Swap the words left and right (keeping their case), as a mirrored image demands."""

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        other = "right" if word.lower() == "left" else "left"
        if word.isupper():
            return other.upper()
        return other.capitalize() if word[0].isupper() else other

    return _SIDE_WORD.sub(swap, text)
