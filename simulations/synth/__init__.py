"""Synthetic hospital sites: seeded, non-IID CT lesion data written as real DICOM files."""

from typing import TYPE_CHECKING

from shared.lazy import lazy_exports

if TYPE_CHECKING:
    from simulations.synth.generate import generate_sites
    from simulations.synth.sites import SiteProfile

__all__ = ["SiteProfile", "generate_sites"]
__getattr__ = lazy_exports(
    __name__,
    {"generate_sites": "simulations.synth.generate", "SiteProfile": "simulations.synth.sites"},
)
