"""Pictures of a phantom series for checking its realism by eye.

``overview.png``: axial slices at the upper, middle and lower lung in the
lung window (W1500/L-600), a mediastinal-window (W350/L40) slice at the heart,
and coronal and sagittal planes. ``nodule_<k>.png``: axial, coronal and sagittal
close-ups (50 mm) of each reference nodule with its annotated diameter and
readers' ratings. ``candidates.png``: axial close-ups of class-0 candidates
(vessel cross-sections, bifurcations, pleura, airway walls) — the look-alikes
a detector must reject.

Images are shown in the radiological convention whatever the file's direction
matrix: patient right on the image left, anterior up, superior up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from engine.files import atomic_path
from engine.io.volume import CtVolume
from engine.phantom.series import generate_series
from engine.phantom.tissues import Tissue
from engine.phantom.truth import PhantomTruth

LUNG_WINDOW = (1500.0, -600.0)
MEDIASTINAL_WINDOW = (350.0, 40.0)


def _window(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    width, level = window
    return np.clip((image.astype(np.float32) - (level - width / 2.0)) / width, 0.0, 1.0)


def _canonical(volume: np.ndarray, direction: tuple[float, ...]) -> tuple[np.ndarray, tuple[bool, bool, bool]]:
    """Undo axis flips: index → superior, row → posterior, col → patient left (axis-aligned volumes)."""
    d = np.asarray(direction).reshape(3, 3)
    flips = (d[0, 0] < 0, d[1, 1] < 0, d[2, 2] < 0)
    view = volume[:: -1 if flips[2] else 1, :: -1 if flips[1] else 1, :: -1 if flips[0] else 1]
    return view, flips


def _to_canonical_irc(irc: tuple[int, int, int], shape: tuple[int, ...], flips: tuple[bool, bool, bool]) -> tuple[int, int, int]:
    i, r, c = irc
    return (shape[0] - 1 - i if flips[2] else i, shape[1] - 1 - r if flips[1] else r, shape[2] - 1 - c if flips[0] else c)


def _figure(rows: int, cols: int, size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, facecolor="black")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes


def _show(ax, image: np.ndarray, window: tuple[float, float], aspect: float, title: str) -> None:
    ax.imshow(_window(image, window), cmap="gray", vmin=0.0, vmax=1.0, aspect=aspect, interpolation="bilinear")
    ax.set_title(title, color="white", fontsize=9)


def render_overview(ct: CtVolume, truth: PhantomTruth, path: Path, dpi: int = 80) -> Path:
    """Write the overview picture of a series (see module docs)."""
    hu, flips = _canonical(ct.hu, ct.geometry.direction)
    labels, _ = _canonical(truth.labels, ct.geometry.direction) if truth.labels is not None else (None, None)
    sx, sy, sz = ct.geometry.spacing_xyz
    nz, ny, nx = hu.shape
    if labels is not None and np.any(labels == Tissue.LUNG):
        lung_z = np.flatnonzero(np.any(labels == Tissue.LUNG, axis=(1, 2)))
        z_low, z_high = int(lung_z[0]), int(lung_z[-1])
        lung_rows = np.flatnonzero(np.any(labels[(z_low + z_high) // 2] == Tissue.LUNG, axis=1))
        row = int(np.median(lung_rows))
        right_cols = np.flatnonzero(np.any(labels[(z_low + z_high) // 2, :, : nx // 2] == Tissue.LUNG, axis=0))
        col = int(np.median(right_cols)) if right_cols.size else nx // 3
    else:
        z_low, z_high, row, col = 0, nz - 1, ny // 2, nx // 3
    levels = [int(z_low + f * (z_high - z_low)) for f in (0.8, 0.55, 0.22)]
    fig, axes = _figure(2, 3, (15, 10.5))
    for ax, z, name in zip(axes[0], levels, ("upper", "middle", "lower")):
        _show(ax, hu[z], LUNG_WINDOW, 1.0, f"axial, {name} lung (slice {z}), W1500/L-600")
    _show(axes[1, 0], hu[levels[2] + (levels[1] - levels[2]) // 3], MEDIASTINAL_WINDOW, 1.0, "axial, heart, W350/L40")
    _show(axes[1, 1], hu[::-1, row, :], LUNG_WINDOW, sz / sx, "coronal, W1500/L-600")
    _show(axes[1, 2], hu[::-1, :, col], LUNG_WINDOW, sz / sy, "sagittal (right lung), W1500/L-600")
    fig.suptitle(f"synthetic chest CT — phantom seed {truth.seed} ({truth.preset}), {nx}×{ny}×{nz}, "
                 f"{sx:.2f}×{sy:.2f}×{sz:.2f} mm — not a patient", color="white", fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as temp:
        fig.savefig(temp, dpi=dpi, facecolor="black")
    return path


def _crop(plane: np.ndarray, center: tuple[int, int], half: tuple[int, int]) -> np.ndarray:
    """A crop of a 2D plane around ``center`` padded with -1000 where it leaves the plane."""
    out = np.full((2 * half[0] + 1, 2 * half[1] + 1), -1000, dtype=plane.dtype)
    r0, c0 = center[0] - half[0], center[1] - half[1]
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(center[0] + half[0] + 1, plane.shape[0]), min(center[1] + half[1] + 1, plane.shape[1])
    if re > rs and ce > cs:
        out[rs - r0 : re - r0, cs - c0 : ce - c0] = plane[rs:re, cs:ce]
    return out


def render_nodule(ct: CtVolume, truth: PhantomTruth, index: int, path: Path, field_mm: float = 50.0) -> Path:
    """Write axial, coronal and sagittal close-ups of nodule ``index``."""
    import matplotlib.patches as patches

    nodule = truth.nodules[index]
    hu, flips = _canonical(ct.hu, ct.geometry.direction)
    sx, sy, sz = ct.geometry.spacing_xyz
    i, r, c = _to_canonical_irc(nodule.center_irc, hu.shape, flips)
    hr, hc, hz = int(field_mm / 2 / sy), int(field_mm / 2 / sx), int(field_mm / 2 / sz)
    fig, axes = _figure(1, 3, (12, 4.6))
    planes = (
        (_crop(hu[int(np.clip(i, 0, hu.shape[0] - 1))], (r, c), (hr, hc)), 1.0, sx, sx, "axial"),
        (_crop(hu[::-1, int(np.clip(r, 0, hu.shape[1] - 1)), :], (hu.shape[0] - 1 - i, c), (hz, hc)), sz / sx, sx, sz, "coronal"),
        (_crop(hu[::-1, :, int(np.clip(c, 0, hu.shape[2] - 1))], (hu.shape[0] - 1 - i, r), (hz, hr)), sz / sy, sy, sz, "sagittal"),
    )
    for ax, (image, aspect, pw, ph, name) in zip(axes[0], planes):
        _show(ax, image, LUNG_WINDOW, aspect, name)
        h, w = image.shape
        ax.add_patch(patches.Ellipse(((w - 1) / 2, (h - 1) / 2), nodule.diameter_mm / pw * 1.6,
                                     nodule.diameter_mm / ph * 1.6, fill=False, color="yellow", lw=0.8, ls="--"))
    verdict = "malignant" if nodule.is_malignant else "benign"
    fig.suptitle(f"nodule {index + 1}: {nodule.diameter_mm:.1f} mm {nodule.kind}, {nodule.shape}, {nodule.location}"
                 f"{', calcified' if nodule.calcified else ''} — ratings {list(nodule.ratings)} → {verdict}",
                 color="white", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as temp:
        fig.savefig(temp, dpi=80, facecolor="black")
    return path


def render_candidates(ct: CtVolume, truth: PhantomTruth, path: Path, count: int = 12, field_mm: float = 40.0) -> Path:
    """Write axial close-ups of class-0 candidates of several sources."""
    from engine.geometry import xyz_to_irc

    hu, flips = _canonical(ct.hu, ct.geometry.direction)
    sx, sy, _ = ct.geometry.spacing_xyz
    negatives = [cand for cand in truth.candidates if cand.label == 0]
    by_source: dict[str, list] = {}
    for cand in negatives:
        by_source.setdefault(cand.source, []).append(cand)
    order = ("vessel", "bifurcation", "pleura", "airway", "parenchyma", "finding")
    chosen = []
    while len(chosen) < count and any(by_source.get(s) for s in order):
        for s in order:
            if by_source.get(s) and len(chosen) < count:
                chosen.append(by_source[s].pop(0))
    cols = 6
    rows = max(1, (len(chosen) + cols - 1) // cols)
    fig, axes = _figure(rows, cols, (2.4 * cols, 2.6 * rows))
    for ax, cand in zip(axes.flat, chosen):
        irc = _to_canonical_irc(tuple(int(v) for v in xyz_to_irc(ct.geometry, cand.center_xyz)), hu.shape, flips)
        z = int(np.clip(irc[0], 0, hu.shape[0] - 1))
        image = _crop(hu[z], (irc[1], irc[2]), (int(field_mm / 2 / sy), int(field_mm / 2 / sx)))
        _show(ax, image, LUNG_WINDOW, 1.0, cand.source)
        ax.plot([(image.shape[1] - 1) / 2], [(image.shape[0] - 1) / 2], marker="+", color="cyan", ms=8, mew=0.8)
    fig.suptitle("class-0 candidates (not nodules), 40 mm axial close-ups", color="white", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as temp:
        fig.savefig(temp, dpi=80, facecolor="black")
    return path


def render_gallery(
    out_dir: str | Path,
    seed: int,
    preset: str = "standard",
    progress: Callable[[float, str], None] | None = None,
) -> list[Path]:
    """Generate phantom ``seed`` and write its pictures to ``out_dir``.

    Args:
        out_dir: Folder for the PNG files (created).
        seed: Phantom seed.
        preset: ``"standard"`` or ``"small"``.
        progress: ``progress(fraction, text)`` callable.

    Returns:
        Paths of the written PNG files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda fraction, text: None)
    ct, truth = generate_series(seed, preset, progress=lambda f, t: report(0.8 * f, t))
    report(0.8, "pictures")
    paths = [render_overview(ct, truth, out / "overview.png")]
    for k in range(len(truth.nodules)):
        paths.append(render_nodule(ct, truth, k, out / f"nodule_{k + 1}.png"))
    paths.append(render_candidates(ct, truth, out / "candidates.png"))
    report(1.0, "done")
    return paths
