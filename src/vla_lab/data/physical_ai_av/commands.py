"""What the Field Agent is told: the text command of each sample.

Three sources, chosen by `data.source.commands.mode`:

- `fixed`: one command for every sample ("Follow the lane", Phase 1 of the driving plan);
- `rule`: `RuleLabeler` (`vla_lab.driving.commands`) derives the command from the sample's own
  future (turn, lane change, speed change), with thresholds in config: the labels a Commander
  would have to give;
- `file`: a parquet of `clip_id, t0_us, command[, reasoning]` written by an auto-labeler
  (`python -m vla_lab.label`, or Alpamayo-R1's reasoning condensed to commands), or by the driving
  world's recorder beside its clips (`commands.parquet`). A relative path is looked up under the
  dataset root first, so a config naming `commands.parquet` follows the data to any root.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vla_lab.driving.commands import FOLLOW_THE_LANE, RuleLabeler

COMMAND_FILE_COLUMNS = ("clip_id", "t0_us", "command")
COMMAND_MODES = ("fixed", "rule", "file")


def read_command_file(path: str | Path) -> dict[tuple[str, int], str]:
    """`(clip_id, t0_us) -> command` from a labels parquet; names the file and missing columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"commands file {path} does not exist; write one with "
            "`python -m vla_lab.label data=<dataset> labeler=rule out=<parquet>`"
        )
    table = pd.read_parquet(path)
    missing = [c for c in COMMAND_FILE_COLUMNS if c not in table.columns]
    if missing:
        raise KeyError(
            f"commands file {path} lacks columns {missing}; expected "
            f"{list(COMMAND_FILE_COLUMNS)} (+ optional reasoning), found {list(table.columns)}"
        )
    return {
        (str(clip), int(t0)): str(command)
        for clip, t0, command in zip(table.clip_id, table.t0_us, table.command, strict=True)
    }


class Commands:
    """The command of a sample, from the configured source (see the module docstring).

    `command(clip_id, t0_us, fut_xyz, fut_rot, v0)` returns None when a `file` has no row for the
    sample (the caller skips and counts it).
    """

    def __init__(
        self, cfg: Mapping[str, Any] | None = None, root: str | Path | None = None
    ) -> None:
        cfg = dict(cfg or {})
        self.mode = str(cfg.pop("mode", "fixed"))
        if self.mode not in COMMAND_MODES:
            raise ValueError(
                f"data.source.commands.mode={self.mode!r}; expected one of {COMMAND_MODES}"
            )
        self.text = str(cfg.pop("text", FOLLOW_THE_LANE))
        self.file = _under_root(cfg.pop("file", None), root)
        rule = dict(cfg.pop("rule", None) or {})
        if cfg:
            raise ValueError(
                f"data.source.commands has unknown keys {sorted(cfg)}; expected mode, text, "
                "file, rule"
            )
        self.labeler = RuleLabeler(**rule)
        self._table: dict[tuple[str, int], str] | None = None
        if self.mode == "file":
            if not self.file:
                raise ValueError("data.source.commands.mode=file needs commands.file=<parquet>")
            self._table = read_command_file(self.file)

    def command(
        self, clip_id: str, t0_us: int, fut_xyz: np.ndarray, fut_rot: np.ndarray, v0: float
    ) -> str | None:
        if self.mode == "fixed":
            return self.text
        if self.mode == "rule":
            return self.labeler.label(fut_xyz, fut_rot, v0)
        return self._table.get((clip_id, int(t0_us)))


def _under_root(file: str | None, root: str | Path | None) -> str | None:
    """A relative `file` that exists under `root` is that one; anything else is as given."""
    if file is None or root is None or Path(file).is_absolute():
        return file
    beside = Path(root) / file
    return str(beside) if beside.is_file() else file
