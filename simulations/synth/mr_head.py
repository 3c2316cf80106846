"""MR head phantom: a brain in a skull with two ellipsoid nuclei, as a site scanner sees it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from simulations.synth.sites import SiteProfile

__all__ = [
    "MATRIX",
    "HeadAnatomy",
    "MrSiteSettings",
    "acquire",
    "draw_anatomy",
    "mr_settings",
    "paint_head",
    "render_head",
]

#: Rows and columns of every synthetic MR slice.
MATRIX = 48
_BRAIN, _SKULL, _NUCLEUS_1, _NUCLEUS_2 = 420.0, 900.0, 260.0, -190.0


@dataclass(frozen=True)
class MrSiteSettings:
    """How one site's MR scanner differs: voxel grid, contrast, noise, blur, bias field.

    Attributes
    ----------
    pixel_mm, slice_mm : float
        In-plane pixel size and distance between slice centres.
    slices : int
        Slices per series (16 to 32).
    contrast : float
        Gain of the nuclei's contrast against the brain.
    noise : float
        Standard deviation of the Gaussian noise (stored units).
    blur_px : float
        In-plane blur of the acquisition (pixels).
    bias : float
        Strength of the smooth multiplicative bias field (0 = flat).
    repetition_time_ms, echo_time_ms, field_strength_t : float
        Sequence facts written into the headers.
    """

    pixel_mm: float
    slice_mm: float
    slices: int
    contrast: float
    noise: float
    blur_px: float
    bias: float
    repetition_time_ms: float
    echo_time_ms: float
    field_strength_t: float

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-ready plain values."""
        return asdict(self)


def mr_settings(profile: SiteProfile) -> MrSiteSettings:
    """Derive a site's MR settings from its (CT-oriented) profile, deterministically."""
    slice_mm = round(1.5 + profile.slice_thickness_mm, 3)
    index = int(profile.code.removeprefix("SITE") or 1)
    return MrSiteSettings(
        pixel_mm=round(2.0 + profile.pixel_spacing_mm, 3),
        slice_mm=slice_mm,
        slices=int(np.clip(round(70.0 / slice_mm), 16, 32)),
        contrast=round(1.3 - 0.15 * ((index - 1) % 4), 3),
        noise=round(profile.noise_hu, 3),
        blur_px=round(profile.blur_mm, 3),
        bias=round(0.08 * (1 + (index - 1) % 4), 3),
        repetition_time_ms=600.0 + 300.0 * (index % 3),
        echo_time_ms=12.0 + 4.0 * (index % 3),
        field_strength_t=3.0 if index % 2 else 1.5,
    )


def _grid_mm(settings: MrSiteSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre coordinates (x, y, z) in mm, centred on the volume, axes (x, y, z)."""
    xy = (np.arange(MATRIX) - (MATRIX - 1) / 2.0) * settings.pixel_mm
    z = (np.arange(settings.slices) - (settings.slices - 1) / 2.0) * settings.slice_mm
    return np.meshgrid(xy, xy, z, indexing="ij")


def _ellipsoid(grid: tuple[np.ndarray, ...], center: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Boolean mask of voxel centres inside an axis-aligned ellipsoid."""
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii, strict=True)) <= 1.0


@dataclass(frozen=True)
class HeadAnatomy:
    """One patient's head in patient coordinates (mm, centred on 0), independent of any grid.

    Attributes
    ----------
    head_radii : numpy.ndarray
        Semi-axes of the skull's outer ellipsoid; the brain is 6 mm inside it.
    nuclei : tuple of (centre, radii)
        The two nuclei's ellipsoids, nucleus 1 (left) then nucleus 2 (right).
    """

    head_radii: np.ndarray
    nuclei: tuple[tuple[np.ndarray, np.ndarray], ...]


def draw_anatomy(settings: MrSiteSettings, rng: np.random.Generator) -> HeadAnatomy:
    """Draw a head and its nuclei at jittered positions and sizes, one in each hemisphere."""
    half_z = (settings.slices - 1) / 2.0 * settings.slice_mm
    head_radii = np.array([rng.uniform(56, 64), rng.uniform(62, 68), half_z + 20.0])
    nuclei = []
    for side in (-1.0, 1.0):
        center = np.array(
            [side * rng.uniform(16, 26), rng.uniform(-12, 12), rng.uniform(-0.3, 0.3) * half_z]
        )
        radii = np.array([rng.uniform(11, 16), rng.uniform(12, 18), rng.uniform(10, 15)])
        nuclei.append((center, radii))
    return HeadAnatomy(head_radii, tuple(nuclei))


def paint_head(
    anatomy: HeadAnatomy,
    settings: MrSiteSettings,
    levels: tuple[float, float] = (_NUCLEUS_1, _NUCLEUS_2),
    tissues: tuple[float, float] = (_BRAIN, _SKULL),
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise `anatomy` on the grid of `settings`: noiseless image and labels (0, 1, 2).

    `levels` are the nuclei's contrasts against the brain (scaled by the site's
    ``contrast``), `tissues` the brain and skull intensities of this MR contrast.
    """
    grid = _grid_mm(settings)
    brain_level, skull_level = tissues
    brain = _ellipsoid(grid, np.zeros(3), anatomy.head_radii - 6.0)
    image = np.where(_ellipsoid(grid, np.zeros(3), anatomy.head_radii), skull_level, 0.0)
    image[brain] = brain_level
    labels = np.zeros(image.shape, dtype=np.uint8)
    for number, ((center, radii), level) in enumerate(zip(anatomy.nuclei, levels, strict=True), 1):
        inside = _ellipsoid(grid, center, radii) & brain
        labels[inside] = number
        image[inside] = brain_level + settings.contrast * level
    return image, labels


def acquire(image: np.ndarray, settings: MrSiteSettings, rng: np.random.Generator) -> np.ndarray:
    """What the site's scanner stores of a noiseless image on its grid (see `_acquire`)."""
    return _acquire(image, settings, _grid_mm(settings), rng)


def render_head(
    settings: MrSiteSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one patient: image (stored uint16 units) and labels (0, 1, 2), axes (x, y, z).

    Nucleus 1 is brighter and nucleus 2 darker than the brain; both lie within it, one
    in each hemisphere, at jittered positions and sizes.
    """
    image, labels = paint_head(draw_anatomy(settings, rng), settings)
    return acquire(image, settings, rng), labels


def _acquire(
    image: np.ndarray,
    settings: MrSiteSettings,
    grid: tuple[np.ndarray, ...],
    rng: np.random.Generator,
) -> np.ndarray:
    """Blur in-plane, apply a smooth bias field, add noise, store as whole numbers."""
    blurred = ndimage.gaussian_filter(image, sigma=(settings.blur_px, settings.blur_px, 0.0))
    tilt = rng.normal(size=3)
    tilt /= np.linalg.norm(tilt)
    extent = np.max([np.abs(g).max() for g in grid])
    field = 1.0 + settings.bias * sum(t * g for t, g in zip(tilt, grid, strict=True)) / extent
    noisy = blurred * field + rng.normal(scale=settings.noise, size=image.shape)
    return np.clip(np.rint(noisy), 0, 4095).astype(np.uint16)
