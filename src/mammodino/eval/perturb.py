"""Input degradations for the robustness check (``mammodino probe --perturb``).

Each degradation acts on the [0, 1] image *at the encoder's input resolution* (after the
resize, before the padding): degrading the 1024-pixel cache image instead would be undone
by the resize to, say, 224 pixels, and the check would measure nothing.

* ``resolution=F``: downsample by the factor F (area interpolation) and back up (bilinear):
  the detail of an image acquired at F times the resolution;
* ``noise=S``: add Gaussian noise of standard deviation S, clip to [0, 1]; the noise is
  seeded by the image id, so a rerun gives the same features.

Example:
    >>> parse_perturbations("resolution=0.5,noise=0.02")
    [Perturbation(kind='resolution', value=0.5), Perturbation(kind='noise', value=0.02)]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from mammodino.errors import UserError

KINDS = ("resolution", "noise")


@dataclass(frozen=True)
class Perturbation:
    kind: str
    value: float

    @property
    def label(self) -> str:
        return f"{self.kind}={self.value:g}"

    def apply(self, img: np.ndarray, key: str = "") -> np.ndarray:
        """Degrade one float32 [0, 1] image (H, W)."""
        if self.kind == "resolution":
            h, w = img.shape
            sh, sw = max(1, int(round(h * self.value))), max(1, int(round(w * self.value)))
            small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
            return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        if self.kind == "noise":
            seed = int.from_bytes(hashlib.sha256(f"{key}|{self.value}".encode()).digest()[:8], "little")
            rng = np.random.default_rng(seed)
            noisy = img + rng.normal(0.0, self.value, img.shape).astype(np.float32)
            return np.clip(noisy, 0.0, 1.0).astype(np.float32)
        raise ValueError(self.kind)


def parse_perturbations(spec: str | None) -> list[Perturbation]:
    """``"resolution=0.5,noise=0.02"`` -> one Perturbation per item (each evaluated alone)."""
    if not spec:
        return []
    out = []
    for item in str(spec).split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise UserError(f"--perturb {item!r}: expected KIND=VALUE with KIND in {', '.join(KINDS)}")
        kind, value = (x.strip() for x in item.split("=", 1))
        if kind not in KINDS:
            raise UserError(f"--perturb: unknown degradation {kind!r} (known: {', '.join(KINDS)})")
        try:
            v = float(value)
        except ValueError as exc:
            raise UserError(f"--perturb {item!r}: {value!r} is not a number") from exc
        if kind == "resolution" and not 0 < v < 1:
            raise UserError(f"--perturb resolution={value}: the factor must be in (0, 1), e.g. 0.5")
        if kind == "noise" and not v > 0:
            raise UserError(f"--perturb noise={value}: the standard deviation must be > 0, e.g. 0.02")
        out.append(Perturbation(kind, v))
    return out
