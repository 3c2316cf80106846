"""Colour DICOM files whose grey values are known, one per photometric interpretation.

Each builder returns the file and the luminance a reader must give, computed here with
ITU-R BT.601 weights (or read off the Y samples) independently of pydicom's converters.
"""

from __future__ import annotations

import io
from pathlib import Path

import dicom_factory as factory
import numpy as np
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit

ROWS, COLUMNS = factory.ROWS, factory.COLUMNS
BT601 = np.array([0.299, 0.587, 0.114])


def luminance_of(rgb: np.ndarray) -> np.ndarray:
    """Reference luminance of (..., 3) RGB values."""
    return rgb.astype(np.float64) @ BT601


def ycbcr_values(seed: int = 0) -> np.ndarray:
    """YCbCr samples whose RGB stays inside 0..255 (no clipping), shape (ROWS, COLUMNS, 3)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(60, 196, size=(ROWS, COLUMNS))
    chroma = rng.integers(108, 149, size=(ROWS, COLUMNS, 2))
    return np.dstack([y, chroma]).astype(np.uint8)


def rgb_file(path: Path, planar: int = 0) -> tuple[Path, np.ndarray]:
    """RGB, colour-by-pixel (planar 0) or colour-by-plane (planar 1)."""
    rgb = factory.rgb_values(seed=21)
    ds = factory.colour_dataset(rgb)
    if planar:
        ds.PlanarConfiguration = 1
        ds.PixelData = np.moveaxis(rgb, -1, 0).tobytes()
    return factory.write(ds, path), luminance_of(rgb)


def ybr_full_file(path: Path) -> tuple[Path, np.ndarray]:
    """YBR_FULL: the luminance is the Y sample itself."""
    ybr = ycbcr_values(seed=22)
    return factory.write(factory.colour_dataset(ybr, "YBR_FULL"), path), ybr[..., 0]


def ybr_full_422_file(path: Path) -> tuple[Path, np.ndarray]:
    """Native YBR_FULL_422: Y1 Y2 Cb Cr per pixel pair (chroma shared by the pair)."""
    ybr = ycbcr_values(seed=23)
    ybr[:, 1::2, 1:] = ybr[:, 0::2, 1:]  # each pair carries one chroma value
    y = ybr[..., 0].reshape(ROWS, COLUMNS // 2, 2)
    chroma = ybr[:, 0::2, 1:]
    ds = factory.colour_dataset(ybr, "YBR_FULL_422")
    ds.PixelData = np.concatenate([y, chroma], axis=-1).tobytes()
    return factory.write(ds, path), ybr[..., 0]


def jpeg_baseline_file(path: Path) -> tuple[Path, np.ndarray]:
    """JPEG baseline with 4:2:2 chroma (ultrasound exports): YBR_FULL_422, lossy."""
    rgb = _smooth_rgb()
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, "JPEG", quality=95, subsampling=1)
    ds = factory.colour_dataset(rgb, "YBR_FULL_422")
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    return factory.write(ds, path), luminance_of(rgb)


def j2k_mct_file(path: Path, lossless: bool = True) -> tuple[Path, np.ndarray]:
    """JPEG 2000 with the colour transform: YBR_RCT (lossless) or YBR_ICT (lossy)."""
    rgb = factory.rgb_values(seed=24) if lossless else _smooth_rgb()
    ds = factory.colour_dataset(rgb)
    if lossless:
        ds.compress(JPEG2000Lossless, use_mct=True)
    else:
        ds.compress(JPEG2000, use_mct=True, j2k_psnr=[60])
    ds.PhotometricInterpretation = "YBR_RCT" if lossless else "YBR_ICT"
    return factory.write(ds, path), luminance_of(rgb)


def palette_file(path: Path, first_mapped: int = 0) -> tuple[Path, np.ndarray]:
    """PALETTE COLOR: 8-bit indices into 16-bit red, green and blue tables.

    Indices below `first_mapped` take the first entry, above the table the last.
    """
    rng = np.random.default_rng(25)
    entries = 200
    table = rng.integers(0, 65536, size=(entries, 3), dtype=np.uint16)
    indices = rng.integers(0, 256, size=(ROWS, COLUMNS), dtype=np.uint8)
    ds = factory.image_dataset(factory.stored_values(), modality="US")
    del ds.RescaleSlope, ds.RescaleIntercept
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = indices.tobytes()
    for channel, colour in enumerate(("Red", "Green", "Blue")):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [entries, first_mapped, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", table[:, channel].tobytes())
    position = np.clip(indices.astype(int) - first_mapped, 0, entries - 1)
    return factory.write(ds, path), luminance_of(table[position])


def _smooth_rgb() -> np.ndarray:
    """Slowly varying RGB ramps, which lossy codecs keep within a few grey levels."""
    rows, columns = np.mgrid[0:ROWS, 0:COLUMNS]
    red = 40 + 4 * rows
    green = 200 - 3 * columns
    blue = 90 + 2 * (rows + columns)
    return np.dstack([red, green, blue]).clip(0, 255).astype(np.uint8)
