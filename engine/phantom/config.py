"""Scan settings of a phantom series: presets, the sampled configuration, overrides.

A series is fully determined by ``(seed, preset, overrides)``. The seed feeds
independent random streams (:func:`stream`), one per concern, so that changing
how e.g. nodules are drawn does not change the patient's anatomy.

The configuration says how the patient is scanned: matrix size, voxel spacing,
where the patient frame lies in LPS world coordinates (:class:`Frame`), which
image axes are flipped in the stored file, noise and blur, and how many
nodules, findings and candidates to make.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.geometry import Geometry
from engine.phantom.distributions import sample_nodule_count
from engine.phantom.patient import PatientParams

#: Random stream names; the position in this tuple is part of each stream's seed.
STREAMS = (
    "patient", "scan", "tissues", "vessels", "airways", "bones", "nodules",
    "readers", "findings", "candidates", "noise", "texture",
)

#: Slice spacings (mm) of the standard preset and their probabilities (LUNA16-like mix).
SLICE_SPACINGS = (0.625, 0.7, 0.8, 1.0, 1.25, 1.5, 1.8, 2.0, 2.5)
SLICE_SPACING_WEIGHTS = (0.1, 0.05, 0.05, 0.1, 0.25, 0.05, 0.05, 0.15, 0.2)


def stream(seed: int, name: str) -> np.random.Generator:
    """The independent random generator ``name`` of series ``seed``.

    Args:
        seed: The series seed (any non-negative int).
        name: One of :data:`STREAMS`.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), STREAMS.index(name), 0x5EED]))


@dataclass(frozen=True)
class Preset:
    """Size class of generated series.

    Args:
        name: ``"standard"`` or ``"small"``.
        matrix: In-plane matrix size (rows = columns).
        spacing_xy_range: Allowed in-plane pixel spacing (mm).
        fixed_slices: Slice count for presets with a fixed count (``0``: from spacing).
        slice_range: Allowed slice count.
        tree_points: Territory points per vessel tree (sets the finest vessels drawn).
    """

    name: str
    matrix: int
    spacing_xy_range: tuple[float, float]
    fixed_slices: int
    slice_range: tuple[int, int]
    tree_points: int


PRESETS: dict[str, Preset] = {
    "standard": Preset("standard", 512, (0.55, 0.9), 0, (100, 450), 5000),
    "small": Preset("small", 160, (1.8, 2.9), 64, (64, 64), 420),
}


@dataclass(frozen=True)
class NoduleRequest:
    """A nodule the caller wants in the series; ``None`` fields are drawn at random.

    Args:
        diameter_mm: Diameter (mm), 3–32.
        kind: ``"solid"``, ``"part-solid"`` or ``"ground-glass"``.
        shape: ``"spherical"``, ``"lobulated"`` or ``"spiculated"``.
        location: ``"parenchyma"``, ``"juxtapleural"`` or ``"juxtavascular"``.
        calcified: Whether a solid nodule is calcified.
    """

    diameter_mm: float | None = None
    kind: str | None = None
    shape: str | None = None
    location: str | None = None
    calcified: bool | None = None


@dataclass(frozen=True)
class SeriesConfig:
    """How one phantom series is scanned and what it contains.

    Args:
        seed: The series seed.
        preset: Preset name.
        matrix: In-plane size (rows = columns).
        n_slices: Number of slices.
        spacing_xyz: Voxel size (mm), x = y in-plane.
        rotation_deg: Patient rotation about the z axis in the scanner.
        body_center_xy: World (LPS mm) x, y of the patient's body axis.
        z_bottom: World z (LPS mm) of the lowest slice.
        origin_xy_offset: Shift (mm) of the field of view centre from the isocentre.
        flip_xyz: Which image axes (col, row, index) run against the LPS axes in the file.
        noise_sigma: Image noise standard deviation (HU) in uniform regions.
        blur_weight: Side weight ``w`` of the ``[w, 1-2w, w]`` partial-volume kernel.
        pad_value: HU outside the reconstruction circle, or ``None`` for no circle.
        n_nodules: How many nodules to place (ignored when ``nodules`` is given).
        nodules: Nodules requested by the caller, or ``None`` to draw them.
        n_findings: How many excluded findings (tiny nodules, granulomas, scars).
        n_candidates: How many class-0 candidates to produce.
        tree_points: Territory points per vessel tree.
    """

    seed: int
    preset: str
    matrix: int
    n_slices: int
    spacing_xyz: tuple[float, float, float]
    rotation_deg: float
    body_center_xy: tuple[float, float]
    z_bottom: float
    origin_xy_offset: tuple[float, float]
    flip_xyz: tuple[bool, bool, bool]
    noise_sigma: float
    blur_weight: float
    pad_value: int | None
    n_nodules: int
    nodules: tuple[NoduleRequest, ...] | None
    n_findings: int
    n_candidates: int
    tree_points: int

    @property
    def shape_irc(self) -> tuple[int, int, int]:
        """Volume shape ``(index, row, col)``."""
        return (self.n_slices, self.matrix, self.matrix)


def sample_config(seed: int, preset: str, patient: PatientParams) -> SeriesConfig:
    """Draw the scan configuration of series ``seed`` for ``patient``.

    Args:
        seed: The series seed.
        preset: A key of :data:`PRESETS`.
        patient: The patient (the field of view is fitted to the body width and
            the scanned length to the lungs).

    Raises:
        ValueError: unknown preset.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown phantom preset {preset!r}; use one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    rng = stream(seed, "scan")
    lo, hi = p.spacing_xy_range
    fov = patient.body_width * rng.uniform(1.02, 1.16)
    spacing_xy = float(np.clip(fov / p.matrix, lo, hi))
    length = patient.scan_top_z - patient.scan_bottom_z
    if p.fixed_slices:
        n_slices = p.fixed_slices
        spacing_z = length / n_slices
    else:
        # thin slices are only used when the whole chest fits in the allowed slice count
        weights = np.array(SLICE_SPACING_WEIGHTS) * (length / np.array(SLICE_SPACINGS) <= p.slice_range[1] + 0.5)
        spacing_z = float(rng.choice(SLICE_SPACINGS, p=weights / weights.sum()))
        n_slices = int(np.clip(round(length / spacing_z), *p.slice_range))
    spacing_z = round(float(spacing_z), 4)
    spacing_xy = round(spacing_xy, 6)
    z_bottom = round(float(rng.uniform(-420.0, -120.0)), 1)
    flip = (False, False, False)
    flip_draw = rng.uniform()
    if flip_draw < 0.08:
        flip = (False, False, True)
    elif flip_draw < 0.15:
        flip = (True, True, False)
    n_nodules = sample_nodule_count(rng)
    pad_draw = rng.uniform()
    pad_value = -2000 if pad_draw < 0.2 else (-3024 if pad_draw < 0.3 else (-1024 if pad_draw < 0.45 else None))
    return SeriesConfig(
        seed=int(seed),
        preset=preset,
        matrix=p.matrix,
        n_slices=n_slices,
        spacing_xyz=(spacing_xy, spacing_xy, spacing_z),
        rotation_deg=float(np.clip(rng.normal(0.0, 1.5), -4.0, 4.0)),
        body_center_xy=(float(rng.normal(0.0, 6.0)), float(rng.uniform(-30.0, 5.0))),
        z_bottom=z_bottom,
        origin_xy_offset=(float(rng.uniform(-8.0, 8.0)), float(rng.uniform(-8.0, 8.0))),
        flip_xyz=flip,
        noise_sigma=float(rng.uniform(12.0, 28.0)),
        blur_weight=float(rng.uniform(0.16, 0.24)),
        pad_value=pad_value,
        n_nodules=n_nodules,
        nodules=None,
        n_findings=int(rng.choice([0, 1, 1, 2, 2, 3, 4])),
        n_candidates=int(rng.integers(350, 900)),
        tree_points=p.tree_points,
    )


def apply_overrides(config: SeriesConfig, overrides: dict[str, Any]) -> SeriesConfig:
    """Replace configuration fields by the caller's values.

    ``nodules`` may be given as dicts or :class:`NoduleRequest`; ``spacing_xyz``
    and ``flip_xyz`` as any 3-sequence.

    Raises:
        TypeError: a key is not a :class:`SeriesConfig` field (the message lists them).
        ValueError: a value is out of range.
    """
    if not overrides:
        return config
    names = {f.name for f in dataclasses.fields(SeriesConfig)} - {"seed", "preset"}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown phantom override(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")
    values = dict(overrides)
    if "nodules" in values and values["nodules"] is not None:
        values["nodules"] = tuple(
            n if isinstance(n, NoduleRequest) else NoduleRequest(**n) for n in values["nodules"]
        )
    for key in ("spacing_xyz", "flip_xyz", "body_center_xy", "origin_xy_offset"):
        if key in values:
            values[key] = tuple(values[key])
    out = dataclasses.replace(config, **values)
    if out.matrix < 32 or out.n_slices < 8:
        raise ValueError(f"phantom too small: matrix {out.matrix}, {out.n_slices} slices (need ≥ 32 and ≥ 8)")
    if min(out.spacing_xyz) <= 0:
        raise ValueError(f"voxel spacing must be positive, got {out.spacing_xyz}")
    return out


@dataclass(frozen=True)
class Frame:
    """Where the patient frame and the voxel grid lie in LPS world space.

    ``world = Rz(rotation) @ patient + translation``. The *canonical* grid has
    identity direction: column → +x, row → +y, index → +z, voxel (0,0,0) at
    ``grid_origin``. The stored file may flip axes (``flip_xyz``); see
    :meth:`geometry`.

    Args:
        rotation_deg: Rotation of the patient about z (degrees).
        translation: World position (LPS mm) of the patient-frame origin.
        grid_origin: World position of canonical voxel (0, 0, 0).
        spacing_xyz: Voxel size (mm).
        shape_irc: Grid shape (index, row, col).
        flip_xyz: Axes flipped in the stored volume (col, row, index).
    """

    rotation_deg: float
    translation: tuple[float, float, float]
    grid_origin: tuple[float, float, float]
    spacing_xyz: tuple[float, float, float]
    shape_irc: tuple[int, int, int]
    flip_xyz: tuple[bool, bool, bool]

    @classmethod
    def from_config(cls, config: SeriesConfig, patient: PatientParams) -> "Frame":
        """Place the patient in the scanner as ``config`` says."""
        sx, sy, sz = config.spacing_xyz
        nz, ny, nx = config.shape_irc
        bx, by = config.body_center_xy
        length = nz * sz
        lung_mid = 0.5 * (patient.scan_bottom_z + patient.scan_top_z)
        # the patient-frame z at the middle of the scanned range
        tz = config.z_bottom + 0.5 * (length - sz) - lung_mid
        ox = -0.5 * (nx - 1) * sx + config.origin_xy_offset[0]
        oy = -0.5 * (ny - 1) * sy + config.origin_xy_offset[1]
        return cls(
            rotation_deg=config.rotation_deg,
            translation=(bx, by, tz),
            grid_origin=(round(ox, 4), round(oy, 4), config.z_bottom),
            spacing_xyz=config.spacing_xyz,
            shape_irc=config.shape_irc,
            flip_xyz=config.flip_xyz,
        )

    @property
    def _rot(self) -> np.ndarray:
        a = np.deg2rad(self.rotation_deg)
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def patient_to_world(self, p: np.ndarray) -> np.ndarray:
        """``(..., 3)`` patient-frame mm → LPS world mm."""
        return np.asarray(p, dtype=np.float64) @ self._rot.T + np.asarray(self.translation)

    def world_to_patient(self, w: np.ndarray) -> np.ndarray:
        """``(..., 3)`` LPS world mm → patient-frame mm."""
        return (np.asarray(w, dtype=np.float64) - np.asarray(self.translation)) @ self._rot

    def patient_to_grid_mm(self, p: np.ndarray) -> np.ndarray:
        """``(..., 3)`` patient mm → canonical grid mm in (z, y, x) order from voxel (0,0,0)."""
        g = self.patient_to_world(p) - np.asarray(self.grid_origin)
        return g[..., ::-1]

    def slice_z(self, index: int) -> float:
        """Patient-frame z (mm) of canonical slice ``index``."""
        return self.grid_origin[2] + index * self.spacing_xyz[2] - self.translation[2]

    def slice_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Patient-frame x and y (mm) of every pixel of a canonical slice, ``float32 (rows, cols)``."""
        nz, ny, nx = self.shape_irc
        sx, sy, _ = self.spacing_xyz
        wx = self.grid_origin[0] + np.arange(nx) * sx - self.translation[0]
        wy = self.grid_origin[1] + np.arange(ny) * sy - self.translation[1]
        a = np.deg2rad(self.rotation_deg)
        c, s = np.cos(a), np.sin(a)
        px = c * wx[None, :] + s * wy[:, None]
        py = -s * wx[None, :] + c * wy[:, None]
        return px.astype(np.float32), py.astype(np.float32)

    def geometry(self) -> Geometry:
        """The stored volume's geometry: canonical grid with the flipped axes reversed."""
        nz, ny, nx = self.shape_irc
        n_xyz = (nx, ny, nz)
        origin = list(self.grid_origin)
        diagonal = []
        for axis in range(3):
            if self.flip_xyz[axis]:
                origin[axis] = self.grid_origin[axis] + (n_xyz[axis] - 1) * self.spacing_xyz[axis]
                diagonal.append(-1.0)
            else:
                diagonal.append(1.0)
        direction = np.diag(diagonal).ravel()
        return Geometry(tuple(origin), self.spacing_xyz, tuple(direction))

    def to_stored(self, volume: np.ndarray) -> np.ndarray:
        """Reorder a canonical ``(z, y, x)`` array into the stored orientation (a view)."""
        fx, fy, fz = self.flip_xyz
        return volume[:: -1 if fz else 1, :: -1 if fy else 1, :: -1 if fx else 1]
