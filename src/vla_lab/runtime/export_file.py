"""Write a graph (`export_graph`) as a TorchScript or ONNX file, checked against PyTorch first.

The file is written beside `out` under a temporary name, loaded back by its runtime and compared
with the PyTorch module on a sample; only a file within `atol` is renamed to `out`, and
`<out>.json` (the sidecar) records what a deployment needs to feed it and what was checked.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_class

from vla_lab.runtime.checkpoint import LoadedCheckpoint, load_checkpoint
from vla_lab.runtime.export_graph import (
    SMOLVLA_NOT_EXPORTABLE,
    example_inputs,
    graph_for,
    reference_outputs,
)
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

GRAPH_FORMATS = ("torchscript", "onnx")
DTYPES = {"float32": torch.float32, "float16": torch.float16}
DEFAULT_ATOL = {"float32": 1e-4, "float16": 1e-2}
ONNX_OPSET = 17


def export_graph_file(
    ckpt_path: str | Path | LoadedCheckpoint,
    final: Path,
    format: str,
    atol: float | None,
    dtype: str,
) -> Path:
    """Export the graph of `ckpt_path` (a file or a `LoadedCheckpoint`) to `final`, verified
    within `atol`; see the module docstring."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {', '.join(DTYPES)}.")
    checkpoint = load_checkpoint(ckpt_path)
    target = str(checkpoint.config.model._target_)
    if get_class(target).__name__.startswith("SmolVLA"):  # before the (slow) module build
        raise NotImplementedError(SMOLVLA_NOT_EXPORTABLE)
    atol = DEFAULT_ATOL[dtype] if atol is None else float(atol)
    module = checkpoint.module
    graph, input_names, output_names = graph_for(module)
    inputs = example_inputs(module, graph)
    expected = reference_outputs(module, inputs)
    output_names = output_names[: len(expected)]

    device = torch.device("cuda" if dtype == "float16" and torch.cuda.is_available() else "cpu")
    if dtype != "float32" or device.type != "cpu":  # the module's own layers stay as they are
        graph = copy.deepcopy(graph).to(device, DTYPES[dtype])
    graph.eval()
    args = tuple(inputs[n].to(device, DTYPES[dtype]) for n in input_names)

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        with torch.no_grad():
            write_graph(graph, args, tmp, format, input_names, output_names)
        actual = run_graph(tmp, format, args, input_names, device)
        errors = [
            float((a.double().cpu() - e.double().cpu()).abs().max())
            for a, e in zip(actual, expected, strict=True)
        ]
        max_error = max(errors)
        if not max_error <= atol:
            raise ValueError(
                f"The {format} export of {checkpoint.path} differs from the PyTorch module by up "
                f"to {max_error:.3g} (per output {dict(zip(output_names, errors, strict=True))}), "
                f"over atol={atol:g}; nothing was written to {final}. Pass a larger atol= if "
                "that is acceptable for your controller, or report the model and dtype."
            )
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)

    sidecar = {
        "format": format,
        "checkpoint": str(checkpoint.path.resolve()),
        "model": target,
        "dtype": dtype,
        "batch_size": 1,
        "inputs": [
            {"name": n, "shape": list(a.shape), "dtype": dtype}
            for n, a in zip(input_names, args, strict=True)
        ],
        "outputs": [
            {"name": n, "shape": list(e.shape), "dtype": dtype}
            for n, e in zip(output_names, expected, strict=True)
        ],
        "check": {
            "runtime": "onnxruntime" if format == "onnx" else "torch.jit",
            "device": device.type,
            "max_abs_error": max_error,
            "max_abs_error_per_output": dict(zip(output_names, errors, strict=True)),
            "atol": atol,
            "passed": True,
        },
        "stats": stats_used(graph),
    }
    write_text_atomically(Path(f"{final}.json"), json.dumps(sidecar, indent=2))
    log.info(
        "Exported %s to %s (max abs error %.3g <= atol %g)", checkpoint.path, final, max_error, atol
    )
    return final


def write_graph(
    graph: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    format: str,
    input_names: list[str],
    output_names: list[str],
) -> None:
    if format == "torchscript":
        torch.jit.trace(graph, args, check_trace=False).save(str(path))
        return
    # The TorchScript-based exporter: the dynamo one needs onnxscript, which we do not install.
    torch.onnx.export(
        graph,
        args,
        str(path),
        input_names=input_names,
        output_names=output_names,
        opset_version=ONNX_OPSET,
        dynamo=False,
    )


def run_graph(
    path: Path, format: str, args: tuple[torch.Tensor, ...], names: list[str], device
) -> list[torch.Tensor]:
    """The outputs of the written file, run by the runtime a deployment would use."""
    if format == "torchscript":
        with torch.no_grad():
            out = torch.jit.load(str(path), map_location=device)(*args)
        return list(out) if isinstance(out, (tuple, list)) else [out]
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(path), providers=providers)
    feeds = {n: a.detach().cpu().numpy() for n, a in zip(names, args, strict=True)}
    return [torch.from_numpy(np.asarray(o)) for o in session.run(None, feeds)]


def stats_used(graph: torch.nn.Module) -> dict:
    """The normalisation constants folded into `graph`, for the sidecar."""
    if hasattr(graph, "stats_used"):
        return graph.stats_used()
    return {
        "action": {
            "mode": "min_max (RoboVLMs: [-1, 1] from the train split's min/max)",
            "center": graph.center.float().cpu().tolist(),
            "half_range": graph.half_range.float().cpu().tolist(),
        }
    }


def write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
