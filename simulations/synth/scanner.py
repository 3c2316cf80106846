"""Scanner model: kernel blur, noise, HU calibration error and stored-pixel encoding."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from simulations.synth.anatomy import smooth_noise
from simulations.synth.sites import SiteProfile

__all__ = ["HU_MAX", "HU_MIN", "acquire", "encode"]

# The range a CT scanner reconstructs: air to dense bone/metal.
HU_MIN = -1024.0
HU_MAX = 3071.0


def acquire(true_hu: np.ndarray, profile: SiteProfile, rng: np.random.Generator) -> np.ndarray:
    """Return the HU image the site's scanner would measure from ``true_hu``.

    Parameters
    ----------
    true_hu : numpy.ndarray
        The phantom in true Hounsfield units.
    profile : SiteProfile
        The site whose kernel, noise and calibration apply.
    rng : numpy.random.Generator
        Source of the noise.

    Returns
    -------
    numpy.ndarray
        Measured HU, clipped to the scanner's range.
    """
    blurred = ndimage.gaussian_filter(true_hu, sigma=profile.blur_mm / profile.pixel_spacing_mm)
    # CT noise is spatially correlated over about a pixel.
    noise = smooth_noise(true_hu.shape, 0.6, rng) * profile.noise_hu
    measured = profile.hu_gain * (blurred + noise) + profile.hu_offset
    return np.clip(measured, HU_MIN, HU_MAX)


def encode(hu: np.ndarray, profile: SiteProfile) -> np.ndarray:
    """Convert HU to stored pixel values using the site's rescale slope and intercept."""
    dtype = np.dtype(profile.pixel_dtype)
    stored = np.rint((hu - profile.rescale_intercept) / profile.rescale_slope)
    info = np.iinfo(dtype)
    return np.clip(stored, info.min, info.max).astype(dtype)
