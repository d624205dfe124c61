"""What machine a figure came from: CPU model, SIMD capability, cores, threads, GPU.

Speed figures without their machine are unreadable (an AVX2 laptop and an AVX-512 server
differ by 2x on the same code), so the demo summary and every benchmark print this.
"""

from __future__ import annotations

import functools
import os
import platform

import torch


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's block of ``/proc/cpuinfo`` (empty where there is none); read
    once per process (the model name and the signature both come from it)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_signature() -> str:
    """`` (family F model M stepping S)`` from ``/proc/cpuinfo``; empty elsewhere. VMs often
    name only the vendor line ("AMD EPYC"), which spans CPU classes that differ 2x in speed."""
    fields = _cpuinfo()
    parts = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
    return f" ({', '.join(parts)})" if parts else ""


def cpu_capability() -> str:
    """The SIMD level PyTorch's CPU kernels use here (``AVX512``, ``AVX2``, ``DEFAULT``...)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # older torch
        return "unknown"


def describe() -> dict:
    info = {
        "cpu": cpu_model() + cpu_signature(),
        "cpu_capability": cpu_capability(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def one_line(info: dict | None = None) -> str:
    info = info or describe()
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ""
    return (f"{info['cpu']} ({info['cpu_capability']}, {info['cores']} cores, "
            f"{info['torch_threads']} torch threads){gpu}, torch {info['torch']}")
