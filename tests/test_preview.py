"""The data preview CLI: stats on stdout and a PNG grid of samples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vla_lab.utils.config import PROJECT_ROOT


def test_preview_cli_prints_stats_and_writes_a_png(shared_dirs, tmp_path: Path):
    out = tmp_path / "preview.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vla_lab.data.preview",
            "data=mobile_vla_synthetic",
            f"paths.data_dir={shared_dirs['data_dir']}",
            f"out={out}",
            "n=4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "action.mean" in result.stdout
    assert out.read_bytes().startswith(b"\x89PNG")
