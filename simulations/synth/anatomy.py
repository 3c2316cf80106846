"""Chest anatomy around a nodule: lung parenchyma, vessels, and the body wall with ribs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "LUNG_HU",
    "ChestWall",
    "Grid",
    "draw_chest_wall",
    "draw_lung",
    "draw_vessels",
    "sample_chest_wall",
]

# Typical Hounsfield units of the tissues drawn here.
LUNG_HU = -860.0
SOFT_TISSUE_HU = 45.0
FAT_HU = -100.0
BONE_CORTEX_HU = 900.0
BONE_MARROW_HU = 250.0


@dataclass(frozen=True)
class Grid:
    """Physical coordinates (mm) of every pixel, centred on the image."""

    x: np.ndarray
    y: np.ndarray
    spacing_mm: float

    @classmethod
    def square(cls, matrix: int, spacing_mm: float) -> Grid:
        """Build the grid of a ``matrix`` x ``matrix`` image with the given pixel size."""
        axis = (np.arange(matrix) - (matrix - 1) / 2.0) * spacing_mm
        y, x = np.meshgrid(axis, axis, indexing="ij")
        return cls(x=x, y=y, spacing_mm=spacing_mm)

    @property
    def half_fov_mm(self) -> float:
        """Half the width of the image in millimetres."""
        return float(self.x.shape[1] * self.spacing_mm / 2.0)


@dataclass(frozen=True)
class ChestWall:
    """A curved pleural line with soft tissue, fat and ribs beyond it.

    ``normal_angle`` points from the lung into the wall; the pleura lies ``distance_mm``
    from the image centre and bends towards the lung with ``curvature`` (1/mm).
    """

    normal_angle: float
    distance_mm: float
    curvature: float
    rib_phase_mm: float

    def depth_mm(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Signed depth beyond the pleura: negative inside the lung, positive in the wall."""
        nx, ny = np.cos(self.normal_angle), np.sin(self.normal_angle)
        along = np.asarray(x * nx + y * ny)
        across = np.asarray(-x * ny + y * nx)
        return along - (self.distance_mm - self.curvature * across**2)


def smooth_noise(shape: tuple[int, int], sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Return Gaussian-filtered white noise rescaled to unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=max(sigma_px, 0.3))
    return field / (field.std() + 1e-12)


def draw_lung(grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """Return lung parenchyma in HU with faint low-frequency texture."""
    texture = smooth_noise(grid.x.shape, 2.5 / grid.spacing_mm, rng)
    return LUNG_HU + 18.0 * texture


def _tube_fraction(distance_mm: np.ndarray, radius_mm: np.ndarray | float) -> np.ndarray:
    """Partial-volume fraction of a tube of ``radius_mm`` at a distance from its axis."""
    return np.clip((radius_mm - distance_mm) / 0.6 + 0.5, 0.0, 1.0)


def draw_vessels(hu: np.ndarray, grid: Grid, rng: np.random.Generator) -> None:
    """Blend a few curved vessels that taper along their course into ``hu`` in place."""
    half = grid.half_fov_mm
    t = np.linspace(0.0, 1.0, int(8 * half / grid.spacing_mm))[:, None]
    for _ in range(int(rng.integers(1, 5))):
        p0, p1, p2 = rng.uniform(-1.2 * half, 1.2 * half, size=(3, 2))
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        cols = np.round(curve[:, 0] / grid.spacing_mm + (hu.shape[1] - 1) / 2).astype(int)
        rows = np.round(curve[:, 1] / grid.spacing_mm + (hu.shape[0] - 1) / 2).astype(int)
        inside = (rows >= 0) & (rows < hu.shape[0]) & (cols >= 0) & (cols < hu.shape[1])
        if not inside.any():
            continue
        axis = np.ones(hu.shape, dtype=bool)
        axis[rows[inside], cols[inside]] = False
        position = np.zeros(hu.shape)
        position[rows[inside], cols[inside]] = t[inside, 0]
        distance, nearest = ndimage.distance_transform_edt(axis, return_indices=True)
        # Vessels narrow towards the periphery: radius shrinks along the curve.
        radius = float(rng.uniform(0.6, 1.8)) * (1.0 - 0.6 * position[nearest[0], nearest[1]])
        fraction = _tube_fraction(distance * grid.spacing_mm, radius)
        hu += fraction * (float(rng.normal(30.0, 15.0)) - hu)


def draw_chest_wall(hu: np.ndarray, grid: Grid, wall: ChestWall) -> None:
    """Overwrite the region beyond the pleura with muscle, fat and rib cross-sections."""
    depth = wall.depth_mm(grid.x, grid.y)
    muscle = np.clip(depth / 0.8 + 0.5, 0.0, 1.0)
    hu += muscle * (SOFT_TISSUE_HU - hu)
    fat = np.clip((depth - 16.0) / 1.5 + 0.5, 0.0, 1.0)
    hu += fat * (FAT_HU - hu)
    # Ribs: ovals in the muscle layer, spaced along the wall.
    nx, ny = np.cos(wall.normal_angle), np.sin(wall.normal_angle)
    across = -grid.x * ny + grid.y * nx
    along_rib = (across + wall.rib_phase_mm) % 36.0 - 18.0
    rib = ((depth - 7.0) / 4.5) ** 2 + (along_rib / 7.5) ** 2
    cortex = np.clip((1.0 - rib) / 0.15, 0.0, 1.0)
    hu += cortex * (BONE_CORTEX_HU - hu)
    marrow = np.clip((0.55 - rib) / 0.15, 0.0, 1.0)
    hu += marrow * (BONE_MARROW_HU - hu)


def sample_chest_wall(
    clear_of_mm: tuple[float, float], clearance_mm: float, rng: np.random.Generator
) -> ChestWall:
    """Draw a chest wall whose pleura stays at least ``clearance_mm`` from a point."""
    angle = float(rng.uniform(0.0, 2.0 * np.pi))
    curvature = float(rng.uniform(0.0, 0.006))
    nx, ny = np.cos(angle), np.sin(angle)
    along = clear_of_mm[0] * nx + clear_of_mm[1] * ny
    across = -clear_of_mm[0] * ny + clear_of_mm[1] * nx
    # The pleura bends towards the lung away from the axis, so push it out accordingly.
    distance = along + clearance_mm + curvature * across**2 + float(rng.uniform(2.0, 40.0))
    return ChestWall(angle, distance, curvature, float(rng.uniform(0.0, 36.0)))
