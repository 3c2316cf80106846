"""Pulmonary nodules: smooth homogeneous benign ones, irregular heterogeneous malignant ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulations.synth.anatomy import Grid, smooth_noise

__all__ = ["Lesion", "draw_lesion", "sample_lesion"]


@dataclass(frozen=True)
class Lesion:
    """Shape and texture of one nodule.

    Attributes
    ----------
    center_mm : tuple[float, float]
        Centre (x, y) relative to the image centre.
    radius_mm : float
        Mean radius.
    malignant : bool
        The label.
    irregularity, heterogeneity : float
        0 to 1: how lobulated/spiculated the margin is, how uneven the texture is.
        Malignant lesions draw higher values, but the two classes overlap.
    harmonics : tuple[tuple[int, float, float], ...]
        Margin ripples ``(order, relative amplitude, phase)``.
    spicules : tuple[tuple[float, float, float], ...]
        Radial strands ``(angle, length mm, half-width mm)``.
    mean_hu : float
        Mean density of the solid part.
    calcified : bool
        A dense central calcification (a benign sign).
    """

    center_mm: tuple[float, float]
    radius_mm: float
    malignant: bool
    irregularity: float
    heterogeneity: float
    harmonics: tuple[tuple[int, float, float], ...]
    spicules: tuple[tuple[float, float, float], ...]
    mean_hu: float
    calcified: bool


def _class_score(malignant: bool, difficulty: float, rng: np.random.Generator) -> float:
    """Draw a 0-1 morphology score; the classes overlap more as ``difficulty`` grows."""
    if malignant:
        score = rng.normal(0.85 - 0.3 * difficulty, 0.1 + 0.15 * difficulty)
    else:
        score = rng.normal(0.05 + 0.2 * difficulty, 0.08 + 0.12 * difficulty)
    return float(np.clip(score, 0.0, 1.0))


def _sample_margin(
    irregularity: float, radius_mm: float, rng: np.random.Generator
) -> tuple[tuple[tuple[int, float, float], ...], tuple[tuple[float, float, float], ...]]:
    """Draw margin ripples (ovality plus lobulation) and spicules for an irregularity score."""
    harmonics = [(2, float(rng.uniform(0.0, 0.22)), float(rng.uniform(0, 2 * np.pi)))]
    for order in range(3, 8):
        amplitude = irregularity * 0.24 * float(rng.uniform(0.3, 1.0)) / np.sqrt(order - 2)
        harmonics.append((order, amplitude, float(rng.uniform(0, 2 * np.pi))))
    spicules = tuple(
        (
            float(rng.uniform(0, 2 * np.pi)),
            float(radius_mm * rng.uniform(0.5, 1.3)),
            float(rng.uniform(0.5, 0.9)),
        )
        for _ in range(int(rng.poisson(9.0 * irregularity**2)))
    )
    return tuple(harmonics), spicules


def sample_lesion(
    malignant: bool, center_mm: tuple[float, float], difficulty: float, rng: np.random.Generator
) -> Lesion:
    """Draw a random nodule of the given class.

    Parameters
    ----------
    malignant : bool
        Class of the nodule.
    center_mm : tuple[float, float]
        Where to put it.
    difficulty : float
        0 to 1; higher values make the two classes' morphology overlap more.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    Lesion
        The nodule's parameters; draw it with `draw_lesion`.
    """
    irregularity = _class_score(malignant, difficulty, rng)
    heterogeneity = _class_score(malignant, difficulty, rng)
    # Sizes overlap: malignant nodules are larger on average only.
    diameter = float(np.clip(rng.lognormal(np.log(19.0 if malignant else 14.0), 0.3), 6.0, 35.0))
    harmonics, spicules = _sample_margin(irregularity, diameter / 2, rng)
    return Lesion(
        center_mm=center_mm,
        radius_mm=diameter / 2,
        malignant=malignant,
        irregularity=irregularity,
        heterogeneity=heterogeneity,
        harmonics=harmonics,
        spicules=spicules,
        mean_hu=float(rng.normal(30.0, 15.0)),
        calcified=(not malignant) and bool(rng.random() < 0.12),
    )


def margin_radius_mm(lesion: Lesion, theta: np.ndarray) -> np.ndarray:
    """Radius of the lesion margin at polar angle ``theta``."""
    ripple = sum(a * np.cos(k * theta + phase) for k, a, phase in lesion.harmonics)
    return lesion.radius_mm * np.clip(1.0 + ripple, 0.5, None)


def _spicule_fraction(lesion: Lesion, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Partial-volume fraction of all spicules, tapering towards their tips."""
    total = np.zeros_like(dx)
    for angle, length, half_width in lesion.spicules:
        ux, uy = np.cos(angle), np.sin(angle)
        start = float(margin_radius_mm(lesion, np.array([angle]))[0]) * 0.8
        along = dx * ux + dy * uy - start
        across = np.abs(-dx * uy + dy * ux)
        t = np.clip(along / length, 0.0, 1.0)
        width = half_width * (1.0 - 0.7 * t)
        inside = (along > -1.0) & (along < length)
        strand = np.clip((width - across) / 0.4 + 0.5, 0.0, 1.0) * inside * (1.0 - 0.5 * t)
        total = np.maximum(total, strand)
    return total


def draw_lesion(hu: np.ndarray, grid: Grid, lesion: Lesion, rng: np.random.Generator) -> None:
    """Blend ``lesion`` into the HU image ``hu`` in place."""
    dx = grid.x - lesion.center_mm[0]
    dy = grid.y - lesion.center_mm[1]
    rho = np.hypot(dx, dy)
    margin = margin_radius_mm(lesion, np.arctan2(dy, dx))
    body = np.clip((margin - rho) / 0.5 + 0.5, 0.0, 1.0)
    fraction = np.maximum(body, _spicule_fraction(lesion, dx, dy))
    texture = smooth_noise(hu.shape, 1.8 / grid.spacing_mm, rng)
    density = lesion.mean_hu + (6.0 + 100.0 * lesion.heterogeneity) * texture
    if lesion.heterogeneity > 0.6:
        # Low-density necrotic core in the most heterogeneous nodules.
        core = np.clip((0.45 * lesion.radius_mm - rho) / 1.0, 0.0, 1.0)
        density -= core * 120.0 * lesion.heterogeneity
    if lesion.calcified:
        calcium = np.clip((0.25 * lesion.radius_mm - rho) / 0.5 + 0.5, 0.0, 1.0)
        density += calcium * 500.0
    hu += fraction * (density - hu)
