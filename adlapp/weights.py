"""Model weights as safetensors files: tensors only, never pickle, so reading one never runs code.

A finished run keeps its weights at each test epoch E as `epoch-{E}.safetensors` (see `RunStore.weights_dir`),
so a page can later show what the trained model predicts, and bundles carry them to other machines.

`save` and `load_into` need torch (imported when called); `check_file` does not: a bundle import on a viewer
path checks weights files from strangers with the standard library alone, by parsing the format itself
(8-byte little-endian header length, a JSON header, then the raw tensor bytes back to back).
"""
from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Any

__all__ = ["save", "load_into", "check_file", "file_name", "epoch_of", "WeightsError", "DTYPE_BYTES",
           "MAX_HEADER_BYTES"]

MAX_HEADER_BYTES = 2 ** 20      # the course U-Net's header is ~3 KiB; a megabyte of JSON is not a model
MAX_TENSORS = 10_000            # entries in one header; the course models have a few dozen
DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8}   # I64: BatchNorm's num_batches_tracked
_TENSOR_NAME = re.compile(r"[A-Za-z0-9_.]{1,200}")        # state_dict names: `enc.0.conv.weight`
_FILE_NAME = re.compile(r"epoch-([1-9][0-9]{0,8})\.safetensors")


class WeightsError(ValueError):
    """A weights file is malformed or does not fit its model; the one-line message says why."""


def file_name(epoch: int) -> str:
    return f"epoch-{int(epoch)}.safetensors"


def epoch_of(name: str) -> int | None:
    """E for a file named `epoch-E.safetensors` (no leading zeros), else None."""
    m = _FILE_NAME.fullmatch(name)
    return int(m.group(1)) if m else None


def save(state_dict: dict[str, Any], path: str | Path) -> Path:
    """Write a state_dict's tensors (parameters and buffers, dtypes as they are) to `path`, atomically."""
    from safetensors.torch import save_file  # torch only where weights are written

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)                      # a crash never leaves half a weights file under the real name
    return path


def load_into(model: Any, path: str | Path) -> Any:
    """Load `path` into `model` (strict: every name and shape must match); returns the model."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        state = load_file(str(path), device=str(next(model.parameters()).device))
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError) as e:
        why = " ".join(str(e).split())
        raise WeightsError(f"{path}: does not fit the model ({why[:300]})") from None
    return model


def check_file(data: bytes | bytearray, max_bytes: int) -> dict[str, tuple[str, list[int]]]:
    """Check a safetensors file from anyone without torch; returns {tensor name: (dtype, shape)}.

    Refused (WeightsError): more than `max_bytes`, a header over MAX_HEADER_BYTES or not a JSON object of
    tensors, a dtype outside DTYPE_BYTES, a shape that is not a list of non-negative ints, data offsets
    whose length is not numel x itemsize, gaps or overlaps between tensors, or bytes after the last one."""
    size = len(data)
    if size > max_bytes:
        raise WeightsError(f"{size:,} bytes; a weights file is at most {max_bytes:,}")
    if size < 8:
        raise WeightsError(f"{size} bytes: too short for a safetensors header")
    (n,) = struct.unpack("<Q", bytes(data[:8]))
    if n > MAX_HEADER_BYTES:
        raise WeightsError(f"header of {n:,} bytes; at most {MAX_HEADER_BYTES:,}")
    if 8 + n > size:
        raise WeightsError(f"header of {n:,} bytes does not fit in the {size:,}-byte file (truncated?)")
    try:
        header = json.loads(bytes(data[8:8 + n]))
    except (ValueError, RecursionError) as e:     # bad UTF-8 and bad JSON alike
        raise WeightsError(f"header is not JSON ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise WeightsError(f"header holds a JSON {type(header).__name__}; expected an object")
    meta = header.pop("__metadata__", None)
    if meta is not None and not (isinstance(meta, dict) and len(meta) <= 64
                                 and all(isinstance(k, str) and isinstance(v, str) and len(k) + len(v) <= 1024
                                         for k, v in meta.items())):
        raise WeightsError("__metadata__ must be a small object of text")
    if len(header) > MAX_TENSORS:
        raise WeightsError(f"{len(header):,} tensors; at most {MAX_TENSORS:,}")

    body = size - 8 - n
    out, spans = {}, []
    for name, entry in header.items():
        if not _TENSOR_NAME.fullmatch(name):
            raise WeightsError(f"tensor name {_show(name)}: expected a state_dict name")
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise WeightsError(f"tensor {name}: expected dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_BYTES:
            raise WeightsError(f"tensor {name}: dtype {_show(dtype)} not allowed ({', '.join(DTYPE_BYTES)})")
        if not isinstance(shape, list) or len(shape) > 8 or not all(_is_int(d) and d >= 0 for d in shape):
            raise WeightsError(f"tensor {name}: shape {_show(shape)}: expected a list of non-negative whole numbers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)
                and offsets[0] <= offsets[1] <= body):
            raise WeightsError(f"tensor {name}: data_offsets {_show(offsets)} outside the {body:,} data bytes")
        need = math.prod(shape) * DTYPE_BYTES[dtype]      # Python ints: 10^12 elements cannot overflow
        if offsets[1] - offsets[0] != need:
            raise WeightsError(f"tensor {name}: shape {_show(shape)} {dtype} needs {need:,} bytes; its data "
                               f"offsets hold {offsets[1] - offsets[0]:,}")
        spans.append((offsets[0], offsets[1], name))
        out[name] = (dtype, list(shape))
    at = 0
    for begin, end, name in sorted(spans):
        if begin != at:
            raise WeightsError(f"tensor {name}: data starts at {begin:,}; expected {at:,} (tensors must be "
                               f"contiguous)")
        at = end
    if at != body:
        raise WeightsError(f"{body - at:,} bytes after the last tensor")
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
