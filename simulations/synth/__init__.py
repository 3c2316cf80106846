"""Synthetic hospital sites: seeded, non-IID CT lesion data written as real DICOM files."""

from simulations.synth.generate import generate_sites
from simulations.synth.sites import SiteProfile

__all__ = ["SiteProfile", "generate_sites"]
