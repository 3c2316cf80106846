"""Chest CT volume phantom with pulmonary nodules at known places (solid and part-solid)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage

from simulations.synth.anatomy import LUNG_HU, SOFT_TISSUE_HU
from simulations.synth.sites import SiteProfile

__all__ = [
    "DetectionGeometry",
    "Nodule",
    "detection_geometry",
    "render_chest",
    "sample_nodules",
]

#: Rows and columns of every synthetic detection slice, and slices per series.
MATRIX = 64
SLICES = 32
MIN_DIAMETER_MM, MAX_DIAMETER_MM = 4.0, 20.0
GROUND_GLASS_HU = -520.0


@dataclass(frozen=True)
class DetectionGeometry:
    """A site's CT grid for detection: 64 x 64 x 32 voxels of its own size.

    Attributes
    ----------
    pixel_mm, slice_mm : float
        In-plane pixel size and distance between slice centres.
    part_solid_fraction : float
        Share of the site's nodules drawn part-solid (ground glass around a solid core).
    """

    pixel_mm: float
    slice_mm: float
    part_solid_fraction: float

    def to_dict(self) -> dict[str, Any]:
        """Return the geometry as JSON-ready plain values."""
        return asdict(self)

    def ct_profile(self, profile: SiteProfile) -> SiteProfile:
        """The site's scanner profile on this grid (what the CT slice writer reads)."""
        return replace(
            profile, matrix=MATRIX, pixel_spacing_mm=self.pixel_mm, slice_thickness_mm=self.slice_mm
        )


@dataclass(frozen=True)
class Nodule:
    """One nodule: centre in voxel index coordinates (x, y, z), diameter and look."""

    center_voxel: tuple[float, float, float]
    diameter_mm: float
    part_solid: bool


def detection_geometry(profile: SiteProfile) -> DetectionGeometry:
    """Derive a site's grid from its scanner profile, deterministically (non-IID sites)."""
    index = int(profile.code.removeprefix("SITE") or 1)
    return DetectionGeometry(
        pixel_mm=round(0.5 + profile.pixel_spacing_mm, 3),
        slice_mm=round(1.0 + profile.slice_thickness_mm * 0.6, 3),
        part_solid_fraction=round(0.2 + 0.15 * ((index - 1) % 3), 2),
    )


def _grid_mm(geometry: DetectionGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre offsets (mm) from voxel (0, 0, 0), axes (x, y, z)."""
    xy = np.arange(MATRIX) * geometry.pixel_mm
    z = np.arange(SLICES) * geometry.slice_mm
    return np.meshgrid(xy, xy, z, indexing="ij")


def _lung_radius_mm(geometry: DetectionGeometry) -> float:
    """The lung field is a cylinder along z inside a soft-tissue chest wall."""
    return 0.46 * MATRIX * geometry.pixel_mm


def sample_nodules(
    geometry: DetectionGeometry, rng: np.random.Generator, max_count: int = 3
) -> list[Nodule]:
    """Draw 0 to `max_count` non-overlapping nodules inside the lung field.

    Diameters are uniform in 4-20 mm; centres keep a radius (plus 1 mm) from the chest
    wall and from each other, and half a diameter from the first and last slice.
    """
    count = int(rng.integers(0, max_count + 1))
    centre = (MATRIX - 1) / 2.0 * geometry.pixel_mm
    nodules: list[Nodule] = []
    for _ in range(count * 20):  # rejection sampling, bounded
        if len(nodules) == count:
            break
        diameter = float(rng.uniform(MIN_DIAMETER_MM, MAX_DIAMETER_MM))
        radius = diameter / 2.0
        reach = _lung_radius_mm(geometry) - radius - 1.0
        angle, distance = rng.uniform(0, 2 * np.pi), reach * np.sqrt(rng.uniform(0, 1))
        z_low, z_high = radius, (SLICES - 1) * geometry.slice_mm - radius
        if z_high <= z_low:
            continue
        point = np.array(
            [centre + distance * np.cos(angle), centre + distance * np.sin(angle),
             rng.uniform(z_low, z_high)]
        )  # fmt: skip
        if any(_apart(point, n, geometry) < radius + n.diameter_mm / 2 + 1.0 for n in nodules):
            continue
        voxel = point / np.array([geometry.pixel_mm, geometry.pixel_mm, geometry.slice_mm])
        nodules.append(
            Nodule(
                center_voxel=tuple(round(float(v), 3) for v in voxel),  # type: ignore[arg-type]
                diameter_mm=round(diameter, 2),
                part_solid=bool(rng.random() < geometry.part_solid_fraction),
            )
        )
    return nodules


def _apart(point_mm: np.ndarray, nodule: Nodule, geometry: DetectionGeometry) -> float:
    scale = np.array([geometry.pixel_mm, geometry.pixel_mm, geometry.slice_mm])
    return float(np.linalg.norm(point_mm - np.asarray(nodule.center_voxel) * scale))


def render_chest(
    geometry: DetectionGeometry, nodules: list[Nodule], rng: np.random.Generator
) -> np.ndarray:
    """True HU (x, y, z) of a lung field with vessels and the given nodules.

    Solid nodules are soft tissue with a sharp margin; part-solid ones are ground glass
    (about -520 HU) with a solid core of 30-60 % of the diameter.
    """
    grid = _grid_mm(geometry)
    centre = (MATRIX - 1) / 2.0 * geometry.pixel_mm
    rho = np.hypot(grid[0] - centre, grid[1] - centre)
    wall = np.clip((rho - _lung_radius_mm(geometry)) / 1.0 + 0.5, 0.0, 1.0)
    texture = ndimage.gaussian_filter(rng.standard_normal(grid[0].shape), 1.5)
    hu = LUNG_HU + 18.0 * texture / (texture.std() + 1e-12)
    hu += wall * (SOFT_TISSUE_HU - hu)
    _draw_vessels(hu, grid, rng)
    for nodule in nodules:
        _draw_nodule(hu, grid, geometry, nodule, rng)
    return hu


def _draw_vessels(hu: np.ndarray, grid: tuple[np.ndarray, ...], rng: np.random.Generator) -> None:
    """A few thin straight vessels running mostly along z (tubular, not round: not nodules)."""
    extent = np.array([g.max() for g in grid])
    points = np.stack([g.ravel() for g in grid], axis=1)
    for _ in range(int(rng.integers(1, 4))):
        start = rng.uniform(0.25, 0.75, size=3) * extent
        direction = np.array([*rng.normal(0, 0.3, size=2), 1.0])
        direction /= np.linalg.norm(direction)
        offset = points - start
        across = offset - np.outer(offset @ direction, direction)
        distance = np.linalg.norm(across, axis=1).reshape(hu.shape)
        fraction = np.clip((float(rng.uniform(0.8, 1.4)) - distance) / 0.6 + 0.5, 0.0, 1.0)
        hu += fraction * (30.0 - hu)


def _draw_nodule(
    hu: np.ndarray,
    grid: tuple[np.ndarray, ...],
    geometry: DetectionGeometry,
    nodule: Nodule,
    rng: np.random.Generator,
) -> None:
    scale = (geometry.pixel_mm, geometry.pixel_mm, geometry.slice_mm)
    offsets = [g - c * s for g, c, s in zip(grid, nodule.center_voxel, scale, strict=True)]
    distance = np.sqrt(sum(o**2 for o in offsets))
    radius = nodule.diameter_mm / 2.0
    body = np.clip((radius - distance) / 0.6 + 0.5, 0.0, 1.0)
    solid_hu = float(rng.normal(35.0, 12.0))
    if nodule.part_solid:
        hu += body * (GROUND_GLASS_HU - hu)
        core = radius * float(rng.uniform(0.3, 0.6))
        hu += np.clip((core - distance) / 0.6 + 0.5, 0.0, 1.0) * (solid_hu - hu)
    else:
        hu += body * (solid_hu - hu)
