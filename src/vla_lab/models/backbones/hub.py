"""Where a pretrained model's files are: a local directory, or the Hugging Face hub's snapshot."""

from __future__ import annotations

from pathlib import Path


def local_or_hub_dir(name: str, allow_patterns: list[str], what: str, hint: str) -> Path:
    """`name` itself when it is a local directory, else its hub snapshot (from the HF cache, or a
    download where there is network), fetching only the files matching `allow_patterns`.

    `what` names the model in errors ("Kosmos-2 backbone"); `hint` says what to do offline.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not a hub id
        raise FileNotFoundError(f"{what} {name!r} is not a directory. {hint}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=name, allow_patterns=allow_patterns))
    except Exception as err:  # hub errors come in many types; all mean "not loadable here"
        raise OSError(
            f"Cannot load {what} {name!r}: it is not a local directory and the HF hub could not "
            f"provide it ({type(err).__name__}: {err}). {hint}"
        ) from err
