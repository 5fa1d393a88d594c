"""``python main.py gui-bench``: how fast the viewer changes slice and window/level.

Opens the main window on a standard 512×512 series (the project's phantom
generator when available, else a synthetic chest-like volume of the same
size) with a detection result on it (probability overlay and markers), then
times, each a median over many repeats:

* a slice change in each view: the state update, new pixels, overlay, markers
  and a synchronous repaint of that view;
* a window/level step: ``setLevels`` on the three views and their repaints;
* a slab scrub step in each view (thin-slab MIP and average, ``--slab-mm``
  thick): the same slice change with the slab projected (goal ≤ 16 ms).

``--profile VIEW`` adds a cProfile summary of that view's plain slice
change. This is a benchmark command, not a timed test; record results in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

DESCRIPTION = "time the viewer's slice change (with overlay and markers) and window/level step"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=100, help="timed repeats per measurement (default 100)")
    parser.add_argument("--shape", type=int, nargs=3, default=(300, 512, 512), metavar=("I", "R", "C"),
                        help="synthetic volume shape (index, row, col) when the phantom is not used")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic volume even if the phantom exists")
    parser.add_argument("--candidates", type=int, default=40, help="candidates in the fake result (default 40)")
    parser.add_argument("--size", type=int, nargs=2, default=(1600, 1000), metavar=("W", "H"), help="window size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slab-mm", type=float, nargs="+", default=(10.0, 20.0),
                        help="slab thicknesses to time the scrub with (default 10 20)")
    parser.add_argument("--profile", choices=("axial", "coronal", "sagittal"), default=None,
                        help="also profile the plain slice change of this view (cProfile, top functions by own time)")


def synthetic_ct(shape: tuple[int, int, int], seed: int = 0):
    """A chest-like int16 volume: air, body, two lungs, noise (no phantom realism)."""
    from engine.io.volume import CtVolume
    from engine.geometry import Geometry

    n_i, n_r, n_c = shape
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:n_r, 0:n_c].astype(np.float32)
    rr, cc = rr / n_r - 0.5, cc / n_c - 0.5
    base = np.full((n_r, n_c), -1000, dtype=np.int16)
    base[(rr / 0.36) ** 2 + (cc / 0.45) ** 2 < 1] = 40
    for side in (-1, 1):
        base[((rr + 0.02) / 0.27) ** 2 + ((cc - side * 0.2) / 0.16) ** 2 < 1] = -850
    noise = rng.normal(0, 25, size=(8, n_r, n_c)).astype(np.int16)
    hu = np.empty(shape, dtype=np.int16)
    for k in range(n_i):  # one slice at a time: no float copy of the volume
        np.add(base, noise[k % 8], out=hu[k])
    spacing = (0.7, 0.7, 1.0)
    origin = (-0.5 * n_c * spacing[0], -0.5 * n_r * spacing[1], -float(n_i) * spacing[2])
    return CtVolume(hu=hu, geometry=Geometry(origin, spacing), series_uid="gui-bench.synthetic")


def standard_ct(seed: int, synthetic: bool, shape: tuple[int, int, int]):
    """The phantom's standard series if it is available, else :func:`synthetic_ct`; and its name."""
    if not synthetic:
        try:
            from engine.phantom import generate_series
        except ImportError:  # an installation without the phantom generator
            generate_series = None
        if generate_series is not None:
            ct, _truth = generate_series(seed, preset="standard")
            return ct, f"phantom (standard preset, seed {seed})"
    return synthetic_ct(tuple(shape), seed), "synthetic"


def fake_result(ct, n: int, seed: int):
    """A detection result with ``n`` candidates and a probability blob at each (no models run)."""
    from engine.detection.result import Candidate, DetectionResult
    from engine.detection.settings import GroupingSettings
    from engine.geometry import irc_to_xyz

    rng = np.random.default_rng(seed)
    shape = np.array(ct.shape)
    spacing = np.array(ct.geometry.spacing_irc)
    prob = np.zeros(ct.shape, dtype=np.uint8)
    candidates = []
    for k in range(n):
        centre = rng.uniform(0.2, 0.8, size=3) * shape
        diameter = float(rng.uniform(4, 20))
        half = np.maximum(1, np.round(0.5 * diameter / spacing)).astype(int)
        lo = np.clip(np.round(centre).astype(int) - half, 0, shape - 1)
        hi = np.clip(np.round(centre).astype(int) + half + 1, 1, shape)
        prob[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 200
        xyz = tuple(float(v) for v in irc_to_xyz(ct.geometry, centre))
        candidates.append(
            Candidate(k + 1, tuple(float(v) for v in centre), xyz, float(rng.uniform()), float(rng.uniform()),
                      int(np.prod(hi - lo)), diameter, (tuple(int(v) for v in lo), tuple(int(v) for v in hi)))
        )
    return DetectionResult(ct.series_uid, ct.shape, ct.geometry, tuple(candidates), prob, GroupingSettings(),
                           {"total": 0.0}, "none", {"segmentation": "bench"})


def _median_ms(samples: list[float]) -> float:
    return 1000.0 * statistics.median(samples)


def _scrub(view, repeats: int, name: str) -> tuple[str, float, float, float]:
    """Time ``repeats`` one-slice steps of a view (state, pixels, overlay, markers, repaint), walking up and down."""
    viewport = view.canvas.viewport()
    samples, markers = [], []
    for k in range(repeats):
        step = 1 if (k // 20) % 2 == 0 else -1  # walk up and down through 20 slices
        start = time.perf_counter()
        view.scroll(step)
        viewport.repaint()
        samples.append(time.perf_counter() - start)
        markers.append(len(view.markers.data))
    return (f"{name} ({view.layout_.n_u}×{view.layout_.n_v})", _median_ms(samples), max(samples) * 1000,
            float(np.mean(markers)))


def run(args: argparse.Namespace) -> int:
    if "QT_QPA_PLATFORM" not in os.environ and not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from app.planes import Plane
    from app.settings import AppSettings
    from app.theme import apply_dark_theme
    from app.windowing import WindowLevel

    app = QApplication.instance() or QApplication([sys.argv[0]])
    apply_dark_theme(app)
    t0 = time.perf_counter()
    ct, source = standard_ct(args.seed, args.synthetic, tuple(args.shape))
    t_volume = time.perf_counter() - t0
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        window = MainWindow(settings=AppSettings(os.path.join(folder, "bench.ini")),
                            detector_factory=lambda: None, demo_models=False)
        window.resize(*args.size)
        window.show()
        app.processEvents()
        state = window.state
        state.set_volume(ct)
        state.set_result(fake_result(ct, args.candidates, args.seed))
        state.set_thresholds(nodule=0.3, near_miss_band=0.2)
        app.processEvents()
        rows = []
        for plane in Plane:
            rows.append(_scrub(window.views[plane], args.repeats, f"slice change, {plane.value}"))
        profile = None if args.profile is None else _profile(window.views[Plane(args.profile)], args.repeats)
        for mode in ("mip", "mean"):
            for thickness in args.slab_mm:
                state.set_slab(enabled=True, mode=mode, thickness_mm=thickness)
                for plane in Plane:
                    label = "MIP" if mode == "mip" else "average"
                    rows.append(_scrub(window.views[plane], args.repeats,
                                       f"slab scrub, {label} {state.slab.thickness_mm:.0f} mm, {plane.value}"))
        state.set_slab(enabled=False)
        samples = []
        for k in range(args.repeats):
            width = 1500.0 + (k % 10) * 20.0
            start = time.perf_counter()
            state.set_window(WindowLevel(width, -600.0))
            for view in window.views.values():
                view.canvas.viewport().repaint()
            samples.append(time.perf_counter() - start)
        rows.append(("window/level step (3 views)", _median_ms(samples), max(samples) * 1000, float("nan")))
        window.close()
    platform = app.platformName()
    print(f"gui-bench: {source} volume {ct.shape} (index,row,col), {args.candidates} candidates, "
          f"window {args.size[0]}×{args.size[1]}, Qt platform {platform}, {args.repeats} repeats; "
          f"volume ready in {t_volume:.1f} s")
    print(f"{'measurement':52} {'median ms':>10} {'max ms':>9} {'markers':>8}")
    for name, median, worst, markers in rows:
        shown = "" if np.isnan(markers) else f"{markers:.1f}"
        print(f"{name:52} {median:10.2f} {worst:9.2f} {shown:>8}")
    if profile is not None:
        print(f"\nprofile of {args.repeats} plain slice changes, {args.profile} (cProfile, by own time):")
        print(profile)
    return 0


def _profile(view, repeats: int) -> str:
    """The top functions of ``repeats`` plain slice changes of a view under cProfile, as text."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    _scrub(view, repeats, "profiled")
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(20)
    return text.getvalue()
