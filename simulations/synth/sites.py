"""Hospital site profiles: how each synthetic site's scanner, population and size differ."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from shared.errors import ConfigError

__all__ = ["MAX_SITES", "MIN_IMAGES", "SiteProfile", "site_profiles"]

MAX_SITES = 64
# Each site needs a few images of each class to be split into train and validation.
MIN_IMAGES = 6


@dataclass(frozen=True)
class SiteProfile:
    """One hospital site: population, scanner and acquisition settings (no identifiers).

    Attributes
    ----------
    name : str
        Folder name of the site, ``site-<n>``.
    code : str
        Short site code used in pseudonymous patient IDs, ``SITE<n>``.
    n_images : int
        Number of images (lesions) the site holds.
    prevalence : float
        Fraction of malignant lesions.
    matrix : int
        Rows and columns of every image.
    pixel_spacing_mm : float
        In-plane pixel size.
    slice_thickness_mm : float
        Reconstructed slice thickness.
    noise_hu : float
        Standard deviation of the scanner noise in Hounsfield units.
    blur_mm : float
        Width (sigma) of the reconstruction kernel blur.
    hu_gain, hu_offset : float
        Calibration error of the scanner: ``measured = gain * true + offset``.
    rescale_slope, rescale_intercept : float
        How stored pixel values map to Hounsfield units.
    pixel_dtype : str
        ``"uint16"`` or ``"int16"`` stored pixels.
    window_center, window_width : float
        Default display window (lung window).
    difficulty : float
        0 (classes far apart) to 1 (heavy overlap of lesion morphology).
    manufacturer, model : str
        Fictional scanner vendor and model.
    kvp : float
        Tube voltage.
    """

    name: str
    code: str
    n_images: int
    prevalence: float
    matrix: int
    pixel_spacing_mm: float
    slice_thickness_mm: float
    noise_hu: float
    blur_mm: float
    hu_gain: float
    hu_offset: float
    rescale_slope: float
    rescale_intercept: float
    pixel_dtype: str
    window_center: float
    window_width: float
    difficulty: float
    manufacturer: str
    model: str
    kvp: float

    def __post_init__(self) -> None:
        if self.n_images < MIN_IMAGES:
            raise ConfigError(f"site n_images must be >= {MIN_IMAGES}; raise --scale")
        if not 0.05 <= self.prevalence <= 0.95:
            raise ConfigError("site prevalence must lie in [0.05, 0.95]")
        if not 32 <= self.matrix <= 512:
            raise ConfigError("site matrix must lie in [32, 512]")
        if self.pixel_dtype not in ("uint16", "int16"):
            raise ConfigError("site pixel_dtype must be 'uint16' or 'int16'")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ConfigError("site difficulty must lie in [0, 1]")

    @property
    def field_of_view_mm(self) -> float:
        """Width of the image in millimetres."""
        return self.matrix * self.pixel_spacing_mm

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as JSON-ready plain values."""
        return asdict(self)


# Three hand-written sites that differ the way real hospitals do.
_BASE_PROFILES: tuple[dict[str, Any], ...] = (
    dict(
        n_images=160,
        prevalence=0.3,
        matrix=128,
        pixel_spacing_mm=0.7,
        slice_thickness_mm=1.0,
        noise_hu=18.0,
        blur_mm=0.5,
        hu_gain=1.0,
        hu_offset=0.0,
        rescale_slope=1.0,
        rescale_intercept=-1024.0,
        pixel_dtype="uint16",
        window_center=-600.0,
        window_width=1500.0,
        manufacturer="Synthetica Medical",
        model="Helix 64",
        kvp=120.0,
    ),
    dict(
        n_images=110,
        prevalence=0.5,
        matrix=96,
        pixel_spacing_mm=1.0,
        slice_thickness_mm=2.5,
        noise_hu=30.0,
        blur_mm=0.8,
        hu_gain=0.97,
        hu_offset=40.0,
        rescale_slope=1.0,
        rescale_intercept=0.0,
        pixel_dtype="int16",
        window_center=-500.0,
        window_width=1400.0,
        manufacturer="Imaginary Imaging",
        model="Spiral 16",
        kvp=100.0,
    ),
    dict(
        n_images=70,
        prevalence=0.2,
        matrix=160,
        pixel_spacing_mm=0.6,
        slice_thickness_mm=0.625,
        noise_hu=45.0,
        blur_mm=0.4,
        hu_gain=1.05,
        hu_offset=-30.0,
        rescale_slope=0.5,
        rescale_intercept=-1024.0,
        pixel_dtype="uint16",
        window_center=-650.0,
        window_width=1600.0,
        manufacturer="Fictive Systems",
        model="Quantum 128",
        kvp=140.0,
    ),
)


def _derived_profile(index: int) -> dict[str, Any]:
    """Derive a further site's settings deterministically from its index (4, 5, ...)."""
    rng = np.random.default_rng([7919, index])
    base = dict(_BASE_PROFILES[index % len(_BASE_PROFILES)])
    matrix = int(rng.choice([96, 112, 128, 144, 160]))
    spacing = round(float(rng.uniform(85.0, 100.0)) / matrix, 2)
    base.update(
        n_images=int(rng.integers(50, 151)),
        prevalence=round(float(rng.uniform(0.15, 0.6)), 2),
        matrix=matrix,
        pixel_spacing_mm=spacing,
        noise_hu=round(float(rng.uniform(15.0, 50.0)), 1),
        hu_gain=round(float(rng.uniform(0.95, 1.06)), 3),
        hu_offset=round(float(rng.uniform(-40.0, 40.0)), 1),
    )
    return base


def site_profiles(n_sites: int, scale: float = 1.0, difficulty: float = 0.4) -> list[SiteProfile]:
    """Return the profiles of ``n_sites`` sites, with image counts multiplied by ``scale``.

    Parameters
    ----------
    n_sites : int
        Number of sites, 1 to ``MAX_SITES``. Sites beyond the third are derived
        deterministically from their index.
    scale : float
        Multiplier of every site's image count (for example 0.2 in tests).
    difficulty : float
        Overlap of lesion morphology between classes, 0 to 1.

    Returns
    -------
    list[SiteProfile]
        One profile per site, named ``site-1``, ``site-2``, ...
    """
    if not 1 <= n_sites <= MAX_SITES:
        raise ConfigError(f"n_sites must lie in [1, {MAX_SITES}]; got {n_sites}")
    if not 0.0 < scale <= 100.0:
        raise ConfigError(f"scale must lie in (0, 100]; got {scale}")
    profiles = []
    for index in range(1, n_sites + 1):
        settings = (
            dict(_BASE_PROFILES[index - 1])
            if index <= len(_BASE_PROFILES)
            else _derived_profile(index)
        )
        settings["n_images"] = max(MIN_IMAGES, round(settings["n_images"] * scale))
        profiles.append(
            SiteProfile(
                name=f"site-{index}", code=f"SITE{index}", difficulty=difficulty, **settings
            )
        )
    return profiles
