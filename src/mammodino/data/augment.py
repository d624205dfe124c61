"""Grayscale photometric augmentation of crops (float32 in [0, 1]), numpy + OpenCV.

DINOv2's recipe without the colour parts a mammogram does not have:

* brightness / contrast jitter with probability ``jitter_prob`` (torchvision ``ColorJitter``
  semantics: brightness multiplies by ``U(1-b, 1+b)``, contrast blends with the crop mean by
  ``U(1-c, 1+c)``, the two in random order, clipped to [0, 1]);
* gamma ``x ** U(gamma)`` with probability ``gamma_prob`` (stands in for the dropped
  saturation/hue jitter: the display curve of mammograms varies between vendors);
* Gaussian blur with probability ``blur_prob = [global 1, global 2, locals]`` and
  ``sigma ~ U(blur_sigma)``. The defaults ``[1.0, 0.1, 0.5]`` are what DINOv2 *intended*;
  its code passes them the other way round (``GaussianBlur(p=0.1)`` is "apply with
  probability 0.9"), a bug its maintainers confirmed. Here ``p`` means "apply with p".
  Kernel side ``2 * ceil(3 sigma) + 1`` (capped by the crop), reflect-101 borders;
* solarize (``x >= 0.5 -> 1 - x``) with probability ``solarize_prob``, global crop 2 only.

All draws go through :meth:`GrayAugment.draw` (one fixed sequence of random numbers per
crop), which returns the decisions as a :class:`AugParams`; :meth:`GrayAugment.apply` does
the pixels. Tests check the configured probabilities through that seam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mammodino.models.preprocess import MEAN, STD

# Which blur probability (index into augment.blur_prob) a crop kind uses.
CROP_KINDS = {"global1": 0, "global2": 1, "local": 2}

# Normalisation of the final crop: the encoder's input constants, owned by models.preprocess.
NORM_MEAN = float(MEAN)
NORM_STD = float(STD)


@dataclass(frozen=True)
class AugParams:
    """The random decisions for one crop (None = not applied)."""

    brightness: float | None = None
    contrast: float | None = None
    contrast_first: bool = False
    gamma: float | None = None
    blur_sigma: float | None = None
    solarize: bool = False


@dataclass(frozen=True)
class GrayAugment:
    jitter_prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    gamma: tuple[float, float] = (0.7, 1.4)
    gamma_prob: float = 0.5
    blur_prob: tuple[float, float, float] = (1.0, 0.1, 0.5)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_prob: float = 0.2

    @classmethod
    def from_config(cls, aug_cfg) -> "GrayAugment":
        """From the ``augment`` section of the config."""
        return cls(
            jitter_prob=float(aug_cfg.jitter_prob),
            brightness=float(aug_cfg.brightness),
            contrast=float(aug_cfg.contrast),
            gamma=tuple(float(v) for v in aug_cfg.gamma),
            gamma_prob=float(aug_cfg.gamma_prob),
            blur_prob=tuple(float(v) for v in aug_cfg.blur_prob),
            blur_sigma=tuple(float(v) for v in aug_cfg.blur_sigma),
            solarize_prob=float(aug_cfg.solarize_prob),
        )

    def draw(self, rng: np.random.Generator, kind: str) -> AugParams:
        """Random decisions for a crop of ``kind`` (global1 | global2 | local).

        Always consumes the same 9 uniforms, whatever is applied, so one decision never
        shifts the random stream of the next.
        """
        u = rng.random(9)
        jitter = u[0] < self.jitter_prob
        brightness = 1.0 + self.brightness * (2.0 * u[1] - 1.0) if jitter and self.brightness > 0 else None
        contrast = 1.0 + self.contrast * (2.0 * u[2] - 1.0) if jitter and self.contrast > 0 else None
        gamma = self.gamma[0] + (self.gamma[1] - self.gamma[0]) * u[5] if u[4] < self.gamma_prob else None
        blur = u[6] < self.blur_prob[CROP_KINDS[kind]]
        sigma = self.blur_sigma[0] + (self.blur_sigma[1] - self.blur_sigma[0]) * u[7] if blur else None
        solarize = kind == "global2" and u[8] < self.solarize_prob
        return AugParams(brightness, contrast, bool(u[3] < 0.5), gamma, sigma, bool(solarize))

    @staticmethod
    def apply(x: np.ndarray, p: AugParams) -> np.ndarray:
        """Apply ``p`` to a float32 image in [0, 1] (modified in place and returned)."""
        if p.contrast_first:
            _contrast(x, p.contrast)
            _brightness(x, p.brightness)
        else:
            _brightness(x, p.brightness)
            _contrast(x, p.contrast)
        if p.gamma is not None:
            np.maximum(x, 0.0, out=x)
            cv2.pow(x, p.gamma, dst=x)
        if p.blur_sigma is not None:
            x = gaussian_blur(x, p.blur_sigma)
        if p.solarize:
            np.subtract(1.0, x, out=x, where=x >= 0.5)
        return x

    def __call__(self, x: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
        return self.apply(x, self.draw(rng, kind))


def _brightness(x: np.ndarray, factor: float | None) -> None:
    if factor is None:
        return
    x *= np.float32(factor)
    np.clip(x, 0.0, 1.0, out=x)


def _contrast(x: np.ndarray, factor: float | None) -> None:
    if factor is None:
        return
    mean = float(x.mean())
    x *= np.float32(factor)
    x += np.float32((1.0 - factor) * mean)
    np.clip(x, 0.0, 1.0, out=x)


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur, kernel ``2 * ceil(3 sigma) + 1`` capped to the image."""
    k = 2 * int(math.ceil(3.0 * sigma)) + 1
    limit = min(x.shape[:2])
    if k > limit:
        k = limit if limit % 2 else limit - 1
    if k < 3:
        return x
    return cv2.GaussianBlur(x, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def normalize(x: np.ndarray) -> np.ndarray:
    """``mammodino.models.preprocess.normalize``, in place on a float32 array (no copy)."""
    x -= np.float32(NORM_MEAN)
    x *= np.float32(1.0 / NORM_STD)
    return x
