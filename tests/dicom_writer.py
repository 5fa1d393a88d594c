"""Write small synthetic DICOM series with SimpleITK, for tests."""

from __future__ import annotations

import locale
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_dicom_series(
    folder: Path,
    hu: np.ndarray,
    spacing_xyz: tuple[float, float, float] = (0.7, 0.7, 2.0),
    origin_xyz: tuple[float, float, float] = (-100.0, -120.0, -200.0),
    series_uid: str = "1.2.826.0.1.3680043.2.1125.7.1",
    modality: str = "CT",
    description: str = "test series",
    z_positions: list[float] | None = None,
    prefix: str = "slice",
) -> list[Path]:
    """Write ``hu`` (int16, index,row,col) as one file per slice.

    Args:
        folder: Target folder (created).
        hu: Volume in HU.
        spacing_xyz: Pixel spacing (x, y) and the nominal slice spacing.
        origin_xyz: Position of the first voxel.
        series_uid: Series instance UID written to every file.
        modality: Modality tag value.
        description: Series description.
        z_positions: Explicit z position per slice (to make gaps or duplicates).
        prefix: File name prefix (files of several series can share a folder).

    Returns:
        The written file paths.
    """
    folder.mkdir(parents=True, exist_ok=True)
    saved_locale = locale.setlocale(locale.LC_ALL)
    try:
        return _write_slices(folder, hu, spacing_xyz, origin_xyz, series_uid, modality, description, z_positions, prefix)
    finally:
        # GDCM's writer switches the process locale to "C" (ASCII text I/O for
        # every later open() without an encoding); put it back.
        locale.setlocale(locale.LC_ALL, saved_locale)


def _write_slices(folder, hu, spacing_xyz, origin_xyz, series_uid, modality, description, z_positions, prefix) -> list[Path]:
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    if z_positions is None:
        z_positions = [origin_xyz[2] + k * spacing_xyz[2] for k in range(hu.shape[0])]
    paths = []
    for k in range(hu.shape[0]):
        image = sitk.GetImageFromArray(np.ascontiguousarray(hu[k : k + 1].astype(np.int16)))
        image.SetSpacing(spacing_xyz)
        image.SetOrigin((origin_xyz[0], origin_xyz[1], z_positions[k]))
        tags = {
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{series_uid}.{k + 1}",
            "0008|0060": modality,
            "0008|103e": description,
            "0020|000d": "1.2.826.0.1.3680043.2.1125.7",
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": f"{origin_xyz[0]}\\{origin_xyz[1]}\\{z_positions[k]}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": f"{spacing_xyz[2]}",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        path = folder / f"{prefix}{k:04d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(image)
        paths.append(path)
    return paths
