"""Write a module's graph (`VLAModule.export_graph`) as a TorchScript or ONNX file, checked
against PyTorch first.

The file is written beside `out` under a temporary name (`atomic_write`), loaded back by its
runtime and compared with the PyTorch module on a sample; only a file within `atol` is renamed to
`out`, and `<out>.json` (the sidecar) records what a deployment needs to feed it and what was
checked.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_class

from vla_lab.models.module import CapabilityError
from vla_lab.runtime.checkpoint import LoadedCheckpoint, load_checkpoint
from vla_lab.utils.io import atomic_write, atomic_write_text
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
    model_cfg = checkpoint.config.model
    target = str(model_cfg._target_)
    module_class = get_class(target).built_class(model_cfg)
    if format not in module_class.capabilities.export_formats:  # before the (slow) module build
        formats = ", ".join(module_class.capabilities.export_formats) or "none"
        raise CapabilityError(
            module_class.capabilities.graph_export_note
            or f"{module_class.__name__} has no {format} export (its formats: {formats})."
        )
    atol = DEFAULT_ATOL[dtype] if atol is None else float(atol)
    exported = checkpoint.module.export_graph()
    graph, input_names, output_names = exported.graph, exported.input_names, exported.output_names
    inputs, expected = exported.example_inputs, exported.reference_outputs

    device = torch.device("cuda" if dtype == "float16" and torch.cuda.is_available() else "cpu")
    if dtype != "float32" or device.type != "cpu":  # the module's own layers stay as they are
        graph = copy.deepcopy(graph).to(device, DTYPES[dtype])
    graph.eval()
    args = tuple(inputs[n].to(device, DTYPES[dtype]) for n in input_names)

    errors: list[float] = []

    def write_checked(tmp: Path) -> None:
        with torch.no_grad():
            write_graph(graph, args, tmp, format, input_names, output_names)
        actual = run_graph(tmp, format, args, input_names, device)
        errors.extend(
            float((a.double().cpu() - e.double().cpu()).abs().max())
            for a, e in zip(actual, expected, strict=True)
        )
        if not max(errors) <= atol:
            raise ValueError(
                f"The {format} export of {checkpoint.path} differs from the PyTorch module by up "
                f"to {max(errors):.3g} "
                f"(per output {dict(zip(output_names, errors, strict=True))}), "
                f"over atol={atol:g}; nothing was written to {final}. Pass a larger atol= if "
                "that is acceptable for your controller, or report the model and dtype."
            )

    atomic_write(final, write_checked)
    max_error = max(errors)

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
        "stats": exported.stats_used,
    }
    atomic_write_text(Path(f"{final}.json"), json.dumps(sidecar, indent=2))
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
