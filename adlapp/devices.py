"""Which device a trainer started from this machine would use, found without importing torch.

The app shows it in the sidebar; importing torch there would cost seconds on every page load. The answer
mirrors `adlapp.train.resolve_device("auto")`: CUDA if a driver reports a GPU, else Apple MPS on Apple
silicon, else the CPU. It is a best guess (a CUDA driver without a CUDA build of torch still trains on CPU);
the device each run actually used is recorded with the run.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["DeviceInfo", "training_device", "cuda_gpus", "parse_nvidia_smi", "cpu_name"]


@dataclass(frozen=True)
class DeviceInfo:
    kind: str            # "cuda" | "mps" | "cpu"
    name: str            # e.g. "NVIDIA H200", "Apple silicon (MPS)", "AMD EPYC (2 cores)"
    count: int = 1       # GPUs for cuda, cores for cpu

    @property
    def label(self) -> str:
        if self.kind == "cuda":
            return f"CUDA GPU: {self.name}" + (f" (×{self.count})" if self.count > 1 else "")
        if self.kind == "mps":
            return f"MPS: {self.name}"
        return f"CPU: {self.name}"


def cuda_gpus(nvidia_smi: str | None = None) -> list[str]:
    """GPU names from `nvidia-smi -L` ("GPU 0: NVIDIA H200 (UUID: ...)"); empty without a driver."""
    exe = nvidia_smi or shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_nvidia_smi(out.stdout) if out.returncode == 0 else []


def parse_nvidia_smi(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        if line.startswith("GPU ") and ":" in line:
            names.append(line.split(":", 1)[1].split("(UUID")[0].strip())
    return names


def cpu_name() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model or 'unknown'} ({os.cpu_count() or 1} cores)"


@lru_cache(maxsize=1)
def training_device() -> DeviceInfo:
    """The device `auto` would pick for a trainer on this machine (cached: it does not change)."""
    gpus = cuda_gpus()
    if gpus:
        return DeviceInfo("cuda", gpus[0], len(gpus))
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return DeviceInfo("mps", "Apple silicon")
    return DeviceInfo("cpu", cpu_name(), os.cpu_count() or 1)
