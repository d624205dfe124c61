"""Which fp32 GEMM the ViT's linear layers use on this CPU: measured once, cached per machine.

PyTorch's ``F.linear`` sends fp32 CPU GEMMs to MKL; oneDNN's matmul does the same IEEE fp32
arithmetic with other kernels. Which is faster depends on the CPU class and the build, not
on the vendor name: on one 2-core AVX2 EPYC oneDNN lost (issue 11), on an AVX-512 one it won
by 2x. So the choice is a measurement: the first fp32 linear on the CPU times both paths on
the ViT's GEMM shapes (forward, grad-input and grad-weight, interleaved, median of three;
about a quarter of a second) and the winner is stored in
``$XDG_CACHE_HOME/mammodino/gemm.json`` under a key naming the CPU model, the SIMD capability
PyTorch runs at, the ISA limits set in the environment, the torch version and the thread
count. ``MAMMODINO_GEMM=onednn|aten`` forces a path (``MAMMODINO_ONEDNN_LINEAR=0`` = aten).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from mammodino import machine

PATHS = ("onednn", "aten")
# (rows, in, out): token rows of a small ViT block's qkv / fc1 / fc2 at training batch sizes
SHAPES = ((2048, 384, 1152), (2048, 384, 1536), (2048, 1536, 384))
_choice: dict[int, str] = {}


def onednn_available() -> bool:
    return (platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def onednn_mm_t(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a @ b.T (+ bias) for 2-D fp32 CPU tensors through oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")


def _forced() -> str | None:
    want = os.environ.get("MAMMODINO_GEMM", "").strip().lower()
    if want in PATHS:
        return want if want == "aten" or onednn_available() else "aten"
    if os.environ.get("MAMMODINO_ONEDNN_LINEAR") == "0":
        return "aten"
    return None


def machine_key() -> str:
    env = ",".join(f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                                                     "MKL_ENABLE_INSTRUCTIONS") if k in os.environ)
    return (f"{machine.cpu_model()}|{machine.cpu_capability()}|{env}|torch {torch.__version__}|"
            f"{torch.get_num_threads()} threads")


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mammodino" / "gemm.json"


def measure(repeats: int = 3) -> dict[str, float]:
    """Seconds for one forward + backward set of GEMMs over ``SHAPES``, per path (median)."""
    g = torch.Generator().manual_seed(0)
    ops = []
    for rows, d_in, d_out in SHAPES:
        x, w = torch.randn(rows, d_in, generator=g), torch.randn(d_out, d_in, generator=g)
        gy = torch.randn(rows, d_out, generator=g)
        ops.append((x, w, gy))

    def run(path: str) -> float:
        t0 = time.perf_counter()
        for x, w, gy in ops:
            if path == "onednn":
                onednn_mm_t(x, w), onednn_mm_t(gy, w.t()), onednn_mm_t(gy.t(), x.t())
            else:
                torch.nn.functional.linear(x, w), gy @ w, gy.t() @ x
        return time.perf_counter() - t0

    times = {p: [] for p in PATHS}
    for p in PATHS:  # warm-up: first calls pay for kernel creation
        run(p)
    for _ in range(repeats):
        for p in PATHS:
            times[p].append(run(p))
    return {p: statistics.median(t) for p, t in times.items()}


def choose(use_cache: bool = True) -> str:
    """``onednn`` or ``aten`` for fp32 CPU linears in this process (threads at first call)."""
    threads = torch.get_num_threads()
    if threads in _choice:
        return _choice[threads]
    path = _forced()
    if path is None and not onednn_available():
        path = "aten"
    if path is None:
        key, cache = machine_key(), _cache_file()
        table = {}
        if use_cache:
            try:
                table = json.loads(cache.read_text())
            except (OSError, ValueError):
                table = {}
        entry = table.get(key)
        if isinstance(entry, dict) and entry.get("path") in PATHS:
            path = entry["path"]
        else:
            seconds = measure()
            path = min(seconds, key=seconds.get)
            table[key] = {"path": path, "seconds": {k: round(v, 5) for k, v in seconds.items()}}
            if use_cache:
                try:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    tmp = cache.with_suffix(f".tmp{os.getpid()}")
                    tmp.write_text(json.dumps(table, indent=1))
                    os.replace(tmp, cache)
                except OSError:
                    pass  # a read-only home: measure again next time
    _choice[threads] = path
    return path


def set_path(path: str | None) -> None:
    """Force ``path`` for this process (benchmarks compare both); ``None`` forgets the choice."""
    _choice.clear()
    if path is not None:
        if path not in PATHS:
            raise ValueError(f"GEMM path {path!r}: expected one of {PATHS}")
        if path == "onednn" and not onednn_available():
            raise ValueError("oneDNN linear is not available in this torch build")
        _choice[torch.get_num_threads()] = path
