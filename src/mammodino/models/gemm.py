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

The same way decides whether CPU *training* runs under bf16 autocast (``train.precision:
auto``; fp32 master weights): the same GEMMs in bf16 (casts included) against the fp32 path
above; bf16 when they are at least ``BF16_MIN_SPEEDUP`` (1.3x) faster. Measured in-run,
GEMMs vs the whole `cpu-tiny` step: AMX (Sapphire Rapids class) 6-8x / 1.9x; AVX512-BF16
without AMX (AMD EPYC, Zen 5 class) 1.9x / 2.0x; bf16 emulated (AVX2) 0.07x / slower. The
first rule (2x) left the Zen 5 class in fp32 at half its speed. The key names the CPU's
family/model/stepping too, since VMs often report a bare "AMD EPYC"; the stored seconds are
re-judged against the current threshold, so changing it needs no new measurement.
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
_bf16: dict[int, bool] = {}
# The step gains about as much as the GEMMs at moderate speed-ups (attention and the
# element-wise work run in bf16 too) and less at large ones (casts, fp32 losses); below
# 1.3x GEMM speed-up the step would gain too little to pay for bf16 rounding.
BF16_MIN_SPEEDUP = 1.3


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
    return (f"{machine.cpu_model()}{machine.cpu_signature()}|{machine.cpu_capability()}|{env}|"
            f"torch {torch.__version__}|{torch.get_num_threads()} threads")


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


def _read_table(cache: Path, use_cache: bool) -> dict:
    if not use_cache:
        return {}
    try:
        table = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def _write_table(cache: Path, table: dict) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(table, indent=1))
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home: measure again next time


def measure_bf16(repeats: int = 3) -> dict[str, float]:
    """Seconds for the ``SHAPES`` GEMMs (forward, grad-input, grad-weight): ``fp32`` on the
    chosen fp32 path, ``bf16`` as autocast runs them (operands cast from fp32 each call)."""
    g = torch.Generator().manual_seed(0)
    ops = [(torch.randn(r, i, generator=g), torch.randn(o, i, generator=g), torch.randn(r, o, generator=g))
           for r, i, o in SHAPES]
    fp32_path = choose()
    bf = torch.bfloat16

    def run(precision: str) -> float:
        t0 = time.perf_counter()
        for x, w, gy in ops:
            if precision == "bf16":
                xb, wb, gb = x.to(bf), w.to(bf), gy.to(bf)
                torch.nn.functional.linear(xb, wb), gb @ wb, gb.t() @ xb
            elif fp32_path == "onednn":
                onednn_mm_t(x, w), onednn_mm_t(gy, w.t()), onednn_mm_t(gy.t(), x.t())
            else:
                torch.nn.functional.linear(x, w), gy @ w, gy.t() @ x
        return time.perf_counter() - t0

    times = {"fp32": [], "bf16": []}
    for p in times:
        run(p)
    for _ in range(repeats):
        for p in times:
            times[p].append(run(p))
    return {p: statistics.median(t) for p, t in times.items()}


def _bf16_verdict(seconds: dict) -> bool:
    return seconds["bf16"] * BF16_MIN_SPEEDUP <= seconds["fp32"]


def cpu_bf16_pays(use_cache: bool = True) -> bool:
    """Whether CPU training here runs faster under bf16 autocast (measured once, cached)."""
    threads = torch.get_num_threads()
    if threads in _bf16:
        return _bf16[threads]
    key, cache = machine_key() + "|bf16 autocast", _cache_file()
    table = _read_table(cache, use_cache)
    entry = table.get(key)
    stored = entry.get("seconds") if isinstance(entry, dict) else None
    if isinstance(stored, dict) and all(isinstance(stored.get(k), (int, float)) and stored[k] > 0
                                        for k in ("fp32", "bf16")):
        pays = _bf16_verdict(stored)
    else:
        seconds = measure_bf16()
        pays = _bf16_verdict(seconds)
        if use_cache:
            table = _read_table(cache, True)  # the fp32 choice may have just been written
            table[key] = {"bf16": pays, "seconds": {k: round(v, 5) for k, v in seconds.items()}}
            _write_table(cache, table)
    _bf16[threads] = pays
    return pays


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
        table = _read_table(cache, use_cache)
        entry = table.get(key)
        if isinstance(entry, dict) and entry.get("path") in PATHS:
            path = entry["path"]
        else:
            seconds = measure()
            path = min(seconds, key=seconds.get)
            table[key] = {"path": path, "seconds": {k: round(v, 5) for k, v in seconds.items()}}
            if use_cache:
                _write_table(cache, table)
    _choice[threads] = path
    return path


def set_path(path: str | None) -> None:
    """Force ``path`` for this process (benchmarks compare both); ``None`` forgets the choice
    (and the bf16 verdict, which is measured against it)."""
    _choice.clear()
    _bf16.clear()
    if path is not None:
        if path not in PATHS:
            raise ValueError(f"GEMM path {path!r}: expected one of {PATHS}")
        if path == "onednn" and not onednn_available():
            raise ValueError("oneDNN linear is not available in this torch build")
        _choice[torch.get_num_threads()] = path
