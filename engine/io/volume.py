"""A CT volume in memory (:class:`CtVolume`) and building one from a SimpleITK image.

A :class:`CtVolume` holds the HU values once, as a read-only ``int16`` array in
(index, row, col) order, with its :class:`~engine.geometry.Geometry`.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from engine.errors import CorruptFileError, NotAVolumeError
from engine.geometry import Geometry

_EMPTY: Mapping[str, str] = types.MappingProxyType({})


@dataclass(frozen=True, eq=False)
class CtVolume:
    """A CT series in memory.

    Args:
        hu: ``int16`` Hounsfield units, shape ``(index, row, col)``, read-only.
        geometry: Where the voxels lie in patient space (LPS mm).
        series_uid: The series instance UID (for MetaImage/NIfTI files, the
            file name stem, as LUNA16 names its files by series uid).
        modality: DICOM modality, ``"CT"`` for files without one.
        source_path: File or folder the volume was read from, if any.
        header: A few useful header fields (manufacturer, kernel, ...) as text.
        warnings: Problems found that did not prevent loading (e.g. non-uniform
            slice spacing), for the caller to show.
        notes: Neutral facts about how the volume was chosen (e.g. which of
            several series in a folder was taken).
    """

    hu: np.ndarray
    geometry: Geometry
    series_uid: str
    modality: str = "CT"
    source_path: Path | None = None
    header: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        hu = self.hu
        if hu.ndim != 3:
            raise NotAVolumeError(f"a CT volume needs 3 dimensions, got shape {hu.shape}")
        if hu.dtype != np.int16:
            raise TypeError(f"CtVolume.hu must be int16, got {hu.dtype}")
        if hu.flags.writeable:
            hu = hu.view()
            hu.flags.writeable = False
            object.__setattr__(self, "hu", hu)
        object.__setattr__(self, "header", types.MappingProxyType(dict(self.header)))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Volume size in voxels, (index, row, col)."""
        return tuple(int(v) for v in self.hu.shape)  # type: ignore[return-value]

    def hu_range(self) -> tuple[int, int]:
        """Smallest and largest HU value in the volume."""
        return int(self.hu.min()), int(self.hu.max())

    def extent_mm(self) -> tuple[float, float, float]:
        """Physical size of the volume in mm along (index, row, col)."""
        return tuple(n * s for n, s in zip(self.shape, self.geometry.spacing_irc))  # type: ignore[return-value]


def read_sitk_image(path: Path):  # -> SimpleITK.Image
    """Read one file with SimpleITK, turning its errors into :class:`CorruptFileError`."""
    import SimpleITK as sitk

    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise CorruptFileError(f"cannot be read as an image ({itk_error_text(exc)})", path) from None


def volume_from_sitk(
    image,
    source_path: Path | None,
    series_uid: str,
    *,
    modality: str = "CT",
    header: Mapping[str, str] | None = None,
    warnings: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
) -> CtVolume:
    """Turn a SimpleITK image into a :class:`CtVolume`, checking it is a 3D scalar volume.

    The voxels are copied once out of the ITK buffer and converted to ``int16``
    (rounded and clipped) only when stored in another type.
    """
    import SimpleITK as sitk

    where = source_path if source_path is not None else "image"
    if image.GetDimension() != 3:
        raise NotAVolumeError(
            f"is a {image.GetDimension()}D image; a CT volume needs 3 dimensions", where
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise NotAVolumeError(
            f"has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
            "a CT volume holds one HU value per voxel",
            where,
        )
    size = image.GetSize()
    if min(size) < 2:
        raise NotAVolumeError(f"has size {size} (x, y, z): a volume needs at least 2 voxels along each axis", where)
    geometry = _checked_geometry(image, where)
    if image.GetPixelID() == sitk.sitkInt16:
        hu = sitk.GetArrayFromImage(image)
    else:
        hu = to_int16(sitk.GetArrayViewFromImage(image))
    fields = dict(header or {})
    if not fields:
        fields = _header_fields(image)
    extra = list(warnings)
    low = int(hu.min())
    if low > -900:
        extra.append(
            f"the lowest value is {low} HU, but air should read about -1000 HU: "
            "the rescale slope/intercept may be wrong or this is not a CT in HU"
        )
    return CtVolume(
        hu=hu,
        geometry=geometry,
        series_uid=series_uid,
        modality=modality,
        source_path=source_path,
        header=fields,
        warnings=tuple(extra),
        notes=notes,
    )


def _checked_geometry(image, where: Path | str) -> Geometry:
    """The image's :class:`Geometry`, refusing non-finite or non-positive spacing and a non-orthonormal direction.

    Raises:
        CorruptFileError: the spacing, origin or direction cannot place the voxels.
    """
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise CorruptFileError(f"has voxel spacing {tuple(spacing)} mm; spacing must be positive and finite", where)
    if not np.all(np.isfinite(origin)):
        raise CorruptFileError(f"has a non-finite origin {tuple(origin)}", where)
    if not np.all(np.isfinite(direction)) or not np.allclose(direction.T @ direction, np.eye(3), atol=1e-3):
        raise CorruptFileError(
            f"has a direction matrix {tuple(direction.ravel())} that is not orthonormal (singular or skewed axes)", where
        )
    try:
        return Geometry(tuple(origin), tuple(spacing), tuple(direction.ravel()))
    except ValueError as exc:
        raise CorruptFileError(f"has an unusable geometry ({exc})", where) from None


def to_int16(values: np.ndarray) -> np.ndarray:
    """Round and clip any numeric array to a new ``int16`` array (no float64 copy)."""
    if np.issubdtype(values.dtype, np.floating):
        out = np.empty(values.shape, dtype=np.float32)
        np.rint(values, out=out, casting="unsafe")
        np.clip(out, -32768, 32767, out=out)
        return out.astype(np.int16)
    info = np.iinfo(values.dtype)
    if info.min >= -32768 and info.max <= 32767:
        return values.astype(np.int16)
    return np.clip(values, -32768, 32767).astype(np.int16)


HEADER_KEYS = {
    "0008|0070": "Manufacturer",
    "0008|1090": "Model",
    "0018|0050": "SliceThickness",
    "0018|0060": "KVP",
    "0018|1210": "ConvolutionKernel",
    "0008|0020": "StudyDate",
    "0008|103e": "SeriesDescription",
    "0028|1052": "RescaleIntercept",
    "0028|1053": "RescaleSlope",
    "ITK_InputFilterName": "Reader",
}


def _header_fields(image) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key in image.GetMetaDataKeys():
        name = HEADER_KEYS.get(key)
        if name:
            value = image.GetMetaData(key).strip()
            if value:
                fields[name] = value
    return fields


def itk_error_text(exc: Exception) -> str:
    """The informative part of an ITK exception text (it carries C++ file names)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if ln.lower().startswith(("description:", "itk::error")) or "error" in ln.lower():
            text = ln.split(":", 1)[-1].strip() if ln.lower().startswith("description:") else ln
            return text[:300]
    return (lines[-1] if lines else str(exc))[:300]
