"""Which data config reads a path: each format's source recognises its own files.

`infer.py input=<path>` and other commands that take a path ask `data_config_for(path)`; nothing
outside a format's own reader knows its layout. A new format is a source class with `recognises`
(`vla_lab.features.DataSource`), a `conf/data/<name>.yaml` (or a ConfigStore node in group
`data`), and one `register_input_format(<name>, <source class>)` call.
"""

from __future__ import annotations

from pathlib import Path

from hydra.utils import get_class

# Data config -> its source class (dotted, imported when asked). Checked in order, newest
# registration first; Mobile VLA's test (any .h5 below a directory) is the loosest, so it is last.
INPUT_FORMATS: dict[str, str] = {
    "nvidia_av": "vla_lab.data.physical_ai_av.clips.PhysicalAIAVClips",
    "roarm_lerobot": "vla_lab.data.lerobot.source.LeRobotEpisodes",
    "mobile_vla_h5": "vla_lab.data.mobile_vla.source.MobileVLAEpisodes",
}


def register_input_format(data_config: str, source_class: type | str) -> None:
    """Let commands read paths `source_class.recognises`, with `conf/data/<data_config>.yaml`."""
    if not isinstance(source_class, str):
        source_class = f"{source_class.__module__}.{source_class.__qualname__}"
    INPUT_FORMATS.pop(data_config, None)
    items = list(INPUT_FORMATS.items())
    INPUT_FORMATS.clear()
    INPUT_FORMATS.update({data_config: source_class, **dict(items)})


def data_config_for(path: Path) -> str:
    """The data config whose source recognises `path`; an unknown path names what each reads."""
    sources = {name: get_class(target) for name, target in INPUT_FORMATS.items()}
    for name, source in sources.items():
        if source.recognises(path):
            return name
    kinds = ", ".join(source.input_description for source in sources.values())
    raise FileNotFoundError(f"input={path} is none of: {kinds}")
