"""Entry point of the generator: a registry of per-task site writers and `generate_sites`."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

from shared.errors import ConfigError
from simulations.synth.classification import generate_classification_site
from simulations.synth.detection import generate_detection_site
from simulations.synth.mr_two_contrast import generate_two_contrast_site
from simulations.synth.segmentation import generate_segmentation_site
from simulations.synth.series import generate_series_site
from simulations.synth.sites import SiteProfile, site_profiles

__all__ = ["SITE_GENERATORS", "generate_sites", "look_up_task"]

# A new task (e.g. segmentation: MR series + DICOM SEG) is one module plus one entry here.
SiteGenerator = Callable[[Path, SiteProfile, int], Path]
SITE_GENERATORS: dict[str, SiteGenerator] = {
    "classification": generate_classification_site,
    "segmentation": generate_segmentation_site,
    # Chest CT series with nodules and a LUNA16-style annotations.csv.
    "detection": generate_detection_site,
    # Segmentation with `seg-inputs`: a T1 and a T2 series per study, the SEG on the T1.
    "segmentation-t1t2": generate_two_contrast_site,
    # The GAN learns to synthesise the CT slices of classification sites; labels unused.
    "gan": generate_classification_site,
    "series": generate_series_site,
}


def look_up_task(task: str) -> SiteGenerator:
    """Return the site writer of ``task``, or raise a ConfigError listing the known tasks."""
    if task in SITE_GENERATORS:
        return SITE_GENERATORS[task]
    close = difflib.get_close_matches(task, SITE_GENERATORS, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    known = ", ".join(sorted(SITE_GENERATORS))
    raise ConfigError(f"unknown synth task '{task}'; {hint}available tasks: {known}")


def generate_sites(
    out: Path,
    n_sites: int = 3,
    seed: int = 0,
    task: str = "classification",
    scale: float = 1.0,
    difficulty: float = 0.4,
) -> list[Path]:
    """Write ``n_sites`` synthetic hospital sites under ``out``.

    Parameters
    ----------
    out : pathlib.Path
        Parent folder; each site goes to ``out/site-<n>``, which must be missing or empty.
    n_sites : int
        Number of sites (the first three are hand-tuned, further ones derived).
    seed : int
        Seed of all randomness; the same seed gives byte-identical files.
    task : str
        Which data to generate; see ``SITE_GENERATORS``.
    scale : float
        Multiplier of every site's image count (about 160 / 110 / 70 at 1.0).
    difficulty : float
        How much the classes' looks overlap, 0 (clearly apart) to 1.

    Returns
    -------
    list[pathlib.Path]
        The site folders ``out/site-1``, ``out/site-2``, ... in site order.
    """
    generator = look_up_task(task)
    profiles = site_profiles(n_sites, scale=scale, difficulty=difficulty)
    out = Path(out)
    for profile in profiles:
        site_dir = out / profile.name
        if site_dir.exists() and any(site_dir.iterdir()):
            raise ConfigError(
                f"site folder {site_dir.name} is not empty; choose an empty --out",
                local=str(site_dir),
            )
    # Numeric order (site-1, site-2, ..., site-10), which is name order for up to 9 sites.
    return [generator(out / profile.name, profile, seed) for profile in profiles]
