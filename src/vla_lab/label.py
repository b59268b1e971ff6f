"""Label every sample of a driving dataset with a text command: the `commands: file` parquet.

    python -m vla_lab.label data=nvidia_av [data.source.root=...] labeler=rule out=labels.parquet
    python -m vla_lab.label data=nvidia_av labeler=vlm [labeler.model_id=...] out=... sample=50

takes train.py's data overrides (`conf/label.yaml`). The parquet holds `clip_id, t0_us, command,
reasoning`, one row per sample (clip, t0) of the data source; train on it with
`data.source.commands.mode=file data.source.commands.file=<out>`.

- `labeler=rule`: `RuleLabeler` on the sample's own future, with the numbers it read as reasoning;
  `labeler=vlm`: a vision-language model on the front frame; the same Commanders the drive loop
  uses (`vla_lab.driving.commanders`).
- Resumable: an existing `out` is read, its clips are skipped, new clips are appended. It is
  rewritten atomically every `flush_every` clips and at the end, so an interruption loses at most
  those clips; re-run the same command to continue. Settings (labeler, t0s) are stored in the
  parquet, and a resume with other settings is refused rather than mixing labels.
- `sample=N`: an HTML page of N labelled frames (seeded) with command and reasoning, the human
  check of the labels, written beside `out` (or to `sample_out`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from vla_lab.data.physical_ai_av.clips import ClipSamples, PhysicalAIAVClips
from vla_lab.data.physical_ai_av.commands import COMMAND_FILE_COLUMNS
from vla_lab.data.physical_ai_av.video import ClipVideo
from vla_lab.driving.commanders import Frame
from vla_lab.runtime.commanders import build_commander
from vla_lab.utils.config import hydra_app
from vla_lab.utils.io import atomic_write, atomic_write_text
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

LABEL_COLUMNS = (*COMMAND_FILE_COLUMNS, "reasoning")
SETTINGS_KEY = b"vla_lab.label"
PAGE_IMAGE_WIDTH = 640  # px: larger frames are shrunk in the HTML page


def label_clip(
    commander: Any, clip_id: str, samples: ClipSamples, frames: Sequence[np.ndarray] | None
) -> list[tuple[str, str]]:
    """(command, reasoning) of each sample of a clip, from its latest frame (at or before t0;
    None when the commander needs no image) and its logged future."""
    return [
        commander.command(
            Frame(
                t_s=float(samples.t0_us[i]) / 1e6,
                clip_id=clip_id,
                t0_us=int(samples.t0_us[i]),
                image=None if frames is None else frames[i],
                fut_xyz=samples.fut_xyz[i],
                fut_rot=samples.fut_rot[i],
                v0=float(samples.state[i, 0]),
            )
        )
        for i in range(len(samples))
    ]


def label_settings(cfg: DictConfig) -> dict[str, Any]:
    """What makes two runs' labels comparable: the labeler and where the t0s fall."""
    labeler = OmegaConf.to_container(cfg.labeler, resolve=True)
    for key in ("device", "dtype"):  # where a model runs does not change its labels
        labeler.pop(key, None)
    source = cfg.data.source
    if source.t0_mode == "fixed":
        t0 = {"t0_mode": "fixed", "t0_us": source.t0_us}
    else:
        t0 = {
            "t0_mode": source.t0_mode,
            "t0_us": source.t0_us,
            "t0_stride_s": source.t0_stride_s,
            "history_margin_s": source.history_margin_s,
            "future_margin_s": source.future_margin_s,
        }
    return {"labeler": labeler, "t0": OmegaConf.to_container(OmegaConf.create(t0), resolve=True)}


def read_labels(path: Path, settings: dict[str, Any]) -> pd.DataFrame:
    """The rows already in `path` (none when it does not exist), refusing other settings."""
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LABEL_COLUMNS})
    arrow = pq.read_table(path)
    stored = (arrow.schema.metadata or {}).get(SETTINGS_KEY)
    if stored is None:
        log.warning("%s carries no labelling settings; resuming it as if they matched", path)
    elif json.loads(stored) != settings:
        changes = "; ".join(_differences(json.loads(stored), settings))
        raise ValueError(
            f"{path} was labelled with other settings ({changes}): labels from both would mix. "
            f"Choose another out=, or delete {path} to start over."
        )
    table = arrow.to_pandas()
    missing = [c for c in COMMAND_FILE_COLUMNS if c not in table.columns]
    if missing:
        raise KeyError(
            f"{path} lacks columns {missing}; expected {list(LABEL_COLUMNS)}: is it a labels "
            "parquet? Choose another out= or delete it."
        )
    if "reasoning" not in table.columns:
        table["reasoning"] = ""
    return table[list(LABEL_COLUMNS)]


def _differences(old: Any, new: Any, key: str = "") -> list[str]:
    """`key: old -> new` for every leaf where two nested settings dicts differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{key}{k}.")]
    return [] if old == new else [f"{key.rstrip('.')}: {old!r} -> {new!r}"]


def write_labels(path: Path, table: pd.DataFrame, settings: dict[str, Any]) -> Path:
    """Write `table` to `path` atomically, with `settings` in the parquet metadata."""
    arrow = pa.Table.from_pandas(table.reset_index(drop=True), preserve_index=False)
    metadata = {**(arrow.schema.metadata or {}), SETTINGS_KEY: json.dumps(settings).encode()}
    arrow = arrow.replace_schema_metadata(metadata)
    return atomic_write(path, lambda tmp: pq.write_table(arrow, tmp))


def label_clips(
    source: PhysicalAIAVClips,
    labeler: Any,
    out: Path,
    settings: dict[str, Any],
    flush_every: int = 50,
    existing: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Label every sample of the clips not yet in `out` (`existing`: its rows, read here when
    None), flushing `out` every `flush_every` clips; returns all rows. On Ctrl-C the finished
    clips are flushed before re-raising."""
    from tqdm.auto import tqdm

    table = read_labels(out, settings) if existing is None else existing
    clips = source.episodes()
    done = set(table["clip_id"].astype(str))
    todo = [c for c in clips if c.clip_id not in done]
    if done:
        log.info(
            "Resuming %s: %d of %d clips already labelled (%d rows); labelling %d",
            out,
            len(clips) - len(todo),
            len(clips),
            len(table),
            len(todo),
        )
    pending: list[pd.DataFrame] = []

    def flush() -> None:
        nonlocal table, pending
        if pending:
            table = pd.concat([table, *pending] if len(table) else pending, ignore_index=True)
            pending = []
            write_labels(out, table, settings)

    progress = tqdm(todo, desc=f"Labelling {out.name}", unit="clip")
    try:
        for k, clip in enumerate(progress, start=1):
            samples = source.clip_samples(clip.clip_id)
            frames = None
            if labeler.needs_image:
                video = ClipVideo(*source.video_location(clip))
                frames = video.frames(samples.frame_index[:, -1].tolist())
            labels = label_clip(labeler, clip.clip_id, samples, frames)
            pending.append(
                pd.DataFrame(
                    {
                        "clip_id": [clip.clip_id] * len(samples),
                        "t0_us": samples.t0_us.astype(np.int64),
                        "command": [command for command, _ in labels],
                        "reasoning": [reasoning for _, reasoning in labels],
                    }
                )
            )
            if k % max(int(flush_every), 1) == 0:
                flush()
    except KeyboardInterrupt:
        flush()
        log.warning(
            "Interrupted: %s holds %d clips (%d rows); re-run the same command to label the rest",
            out,
            table["clip_id"].nunique(),
            len(table),
        )
        raise
    finally:
        progress.close()
    flush()
    return table


def write_sample_page(
    source: PhysicalAIAVClips,
    table: pd.DataFrame,
    path: Path,
    n: int,
    seed: int = 0,
    title: str = "Labelled samples",
) -> Path:
    """One self-contained HTML page of `n` rows of `table` (seeded choice): each sample's latest
    frame with its command, reasoning, clip_id and t0_us."""
    clips = {c.clip_id: c for c in source.episodes()}
    candidates = table[table["clip_id"].isin(list(clips))].reset_index(drop=True)
    if len(candidates) < n:
        log.warning("sample=%d: only %d labelled samples of this dataset", n, len(candidates))
    rng = np.random.default_rng(seed)
    chosen = candidates.iloc[np.sort(rng.choice(len(candidates), min(n, len(candidates)), False))]
    cards = []
    for clip_id, rows in chosen.groupby("clip_id", sort=False):
        samples = source.clip_samples(clip_id)
        position = {int(t0): i for i, t0 in enumerate(samples.t0_us)}
        rows = rows[rows["t0_us"].astype(np.int64).isin(list(position))]
        indices = [int(samples.frame_index[position[int(t0)], -1]) for t0 in rows["t0_us"]]
        frames = (
            ClipVideo(*source.video_location(clips[clip_id])).frames(indices) if indices else []
        )
        cards += [_card(row, frame) for row, frame in zip(rows.itertuples(), frames, strict=True)]
    counts = ", ".join(
        f"{html.escape(str(c))}: {k}" for c, k in table["command"].value_counts().items()
    )
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:1em}.grid{display:flex;flex-wrap:wrap;gap:12px}"
        ".card{width:320px;border:1px solid #ccc;padding:6px}.card img{width:100%}"
        ".command{font-weight:bold;font-size:1.1em}.meta{color:#666;font-size:.8em}"
        "</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1><p>{len(cards)} of {len(table)} samples; {counts}</p>\n"
        "<div class='grid'>\n" + "\n".join(cards) + "\n</div></body></html>\n"
    )
    return atomic_write_text(path, page)


def _card(row: Any, frame: np.ndarray) -> str:
    image = Image.fromarray(frame)
    if image.width > PAGE_IMAGE_WIDTH:
        height = round(image.height * PAGE_IMAGE_WIDTH / image.width)
        image = image.resize((PAGE_IMAGE_WIDTH, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f"<div class='card'><img src='data:image/jpeg;base64,{data}'>"
        f"<div class='command'>{html.escape(str(row.command))}</div>"
        f"<div>{html.escape(str(row.reasoning))}</div>"
        f"<div class='meta'>{html.escape(str(row.clip_id))} t0_us={int(row.t0_us)}</div></div>"
    )


def label_dataset(cfg: DictConfig) -> Path:
    """The job of `python -m vla_lab.label` (see the module docstring, `conf/label.yaml`): label
    the samples of `cfg.data` into the parquet `cfg.out`, which it returns."""
    if OmegaConf.is_missing(cfg, "out"):
        raise ValueError(
            "out= is required: python -m vla_lab.label data=<dataset> labeler=rule|vlm "
            "out=<labels.parquet> [sample=N]"
        )
    target = OmegaConf.select(cfg, "data.source._target_")
    if target != f"{PhysicalAIAVClips.__module__}.{PhysicalAIAVClips.__name__}":
        raise TypeError(
            f"data.source._target_ is {target}; labelling needs a driving dataset "
            "(data=nvidia_av or data=av_synthetic)"
        )
    out = Path(str(cfg.out)).expanduser()
    settings = label_settings(cfg)
    existing = read_labels(out, settings)  # refuses a mismatch before any slow start-up
    # Labels never depend on labels: the source serves its fixed command while we label it.
    OmegaConf.update(cfg, "data.source.commands.mode", "fixed", force_add=True)
    source = instantiate(cfg.data.source, _convert_="all")
    labeler = build_commander(
        OmegaConf.to_container(cfg.labeler, resolve=True), str(cfg.paths.cache_dir)
    )
    table = label_clips(source, labeler, out, settings, int(cfg.flush_every), existing)
    counts = table["command"].value_counts()
    log.info(
        "Wrote %s: %d samples of %d clips\n%s",
        out,
        len(table),
        table["clip_id"].nunique(),
        "\n".join(f"  {count:6d}  {command}" for command, count in counts.items()),
    )
    if int(cfg.sample) > 0:
        page = Path(str(cfg.sample_out)) if cfg.sample_out else out.with_suffix(".html")
        title = f"{out.name}: labeler={cfg.labeler.name}"
        write_sample_page(source, table, page, int(cfg.sample), int(cfg.seed), title)
        log.info("Wrote %s: labelled frames to check", page)
    return out


def main() -> None:
    """`python -m vla_lab.label key=value ...` (`--help` lists the keys)."""
    hydra_app(label_dataset, "label")()


if __name__ == "__main__":
    main()
