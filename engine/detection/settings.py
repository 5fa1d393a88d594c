"""How a detection groups its segmentation into candidates, and the detector's settings (torch-free).

:class:`GroupingSettings` is the one object that carries the grouping
parameters from where they are chosen (the CLI options, the viewer's CAD
panel) to where they act (:meth:`~engine.detection.Detector.regroup`,
:func:`~engine.detection.grouping.group_components`), into the result
(:attr:`DetectionResult.grouping`) and into the evaluation cache's
fingerprint. Each field states its command-line help (and choices) in its
``metadata``; :mod:`engine.commands.options` derives the options from them, so
a new grouping option is a new field here, its control in the CAD panel, and
the code that uses it.

Nothing here imports torch: building a parser, a settings form or the viewer's
state does not load it.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping

#: Erosions before labelling: ``3d`` is SPEC §4's (the book's) 6-neighbour cross;
#: ``in-plane`` uses the 4 in-slice neighbours only, so a small nodule only two
#: slices thick survives it; ``none`` labels the thresholded voxels as they are.
EROSIONS = ("3d", "in-plane", "none")
#: Runtimes a detector can run its models in (:attr:`DetectorConfig.backend`).
BACKENDS = ("torch", "onnx", "auto")
#: Names of the erosions for people (the CAD panel's choice), in :data:`EROSIONS` order.
EROSION_NAMES = {"3d": "3D cross (book)", "in-plane": "In-plane", "none": "None"}
#: How thresholded voxels become candidates: ``components`` is SPEC §4's (the book's) one candidate per
#: eroded component at its HU-weighted centre; ``peaks`` (:mod:`engine.detection.candidates`) splits merged
#: blobs at probability/depth peaks, centres each on its core, keeps thin nodules and merges fragments.
METHODS = ("components", "peaks")
#: Names of the methods for people (the CAD panel's choice), in :data:`METHODS` order.
METHOD_NAMES = {"components": "Components (book)", "peaks": "Peaks (split, merge)"}


def check_erosion(erosion: str) -> str:
    """``erosion`` if it is one of :data:`EROSIONS`.

    Raises:
        ValueError: it is not.
    """
    if erosion not in EROSIONS:
        raise ValueError(f"unknown erosion {erosion!r}; use one of {', '.join(EROSIONS)}")
    return erosion


def _option(
    help_text: str, label: str, choices: tuple[str, ...] | None = None, peaks: bool = False
) -> dict[str, Any]:
    """Field metadata: the command-line ``help``, the ``label`` in :meth:`GroupingSettings.describe`, ``choices``.

    ``peaks`` marks a setting only the ``peaks`` method uses: it is described and
    exported only when that method is chosen or when it differs from its default.
    """
    metadata: dict[str, Any] = {"help": help_text, "label": label, "peaks": peaks}
    if choices is not None:
        metadata["choices"] = choices
    return metadata


@dataclass(frozen=True)
class GroupingSettings:
    """How the segmentation probabilities become candidates (SPEC §4, steps 2–3).

    Args:
        seg_threshold: Segmentation probability threshold in [0, 1]; voxels with
            ``p > seg_threshold`` are grouped.
        erosion: Erosion before labelling, one of :data:`EROSIONS` (``3d``: SPEC §4, the book's);
            the ``components`` method's only (``peaks`` keeps every thresholded voxel).
        method: One of :data:`METHODS` (``components``: SPEC §4, the book's).
        merge_mm: ``peaks``: findings closer than ``max(merge_mm, their radii)`` are one
            lesion, and so is a fragment (at most half a finding's diameter) within that finding's
            radius + ``merge_mm``; components longer than twice this are split. > 0.
        smooth_mm: ``peaks``: Gaussian sigma (mm) of the probability smoothing for the seeds; ≥ 0.
        min_diameter_mm: ``peaks``: findings with a smaller equivalent diameter (specks) are dropped; ≥ 0.

    Raises:
        ValueError: a value out of range or not among its choices.
    """

    seg_threshold: float = field(
        default=0.5,
        metadata=_option("segmentation probability threshold: voxels above it are grouped (default 0.5)", "threshold"),
    )
    erosion: str = field(
        default="3d",
        metadata=_option(
            "erosion before grouping: 3d = the book's 6-neighbour cross (default); in-plane keeps small nodules"
            " only two slices thick; none",
            "erosion",
            EROSIONS,
        ),
    )
    method: str = field(
        default="peaks",
        metadata=_option(
            "how voxels become candidates: components = the book's connected components at their centre of mass;"
            " peaks = split merged blobs at probability peaks, centre on the core, merge fragments,"
            " keep thin nodules (no erosion; the default)",
            "method",
            METHODS,
        ),
    )
    merge_mm: float = field(
        default=5.0,
        metadata=_option("peaks: findings closer than max(this, their radii) in mm are one lesion, and a fragment"
                         " within a larger finding's radius + this joins it (default 5)",
                         "merge mm", peaks=True),
    )
    smooth_mm: float = field(
        default=2.0,
        metadata=_option("peaks: Gaussian sigma in mm of the probability smoothing for the seeds (default 2)",
                         "smoothing mm", peaks=True),
    )
    min_diameter_mm: float = field(
        default=2.0,
        metadata=_option("peaks: drop findings with a smaller equivalent diameter in mm (default 2)",
                         "min diameter mm", peaks=True),
    )

    def __post_init__(self) -> None:
        threshold = self.seg_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
            raise ValueError(f"segmentation threshold must be a number, got {threshold!r}")
        if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
            raise ValueError(f"segmentation threshold must lie in [0, 1], got {threshold}")
        object.__setattr__(self, "seg_threshold", float(threshold))
        check_erosion(self.erosion)
        if self.method not in METHODS:
            raise ValueError(f"unknown grouping method {self.method!r}; use one of {', '.join(METHODS)}")
        for name, low, strict in (("merge_mm", 0.0, True), ("smooth_mm", 0.0, False), ("min_diameter_mm", 0.0, False)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name.replace('_', ' ')} must be a finite number, got {value!r}")
            if value < low or (strict and value == low):
                raise ValueError(f"{name.replace('_', ' ')} must be {'>' if strict else '>='} {low:g}, got {value}")
            object.__setattr__(self, name, float(value))

    def _shown(self) -> list[dataclasses.Field]:
        """The fields that say how this grouping works: threshold, method, and the rest when the method
        uses them or they are not at their defaults."""
        shown = []
        for f in dataclasses.fields(self):
            differs = getattr(self, f.name) != f.default
            used = f.metadata["peaks"] == (self.method == "peaks")
            if f.name in ("seg_threshold", "method") or differs or used:
                shown.append(f)
        return shown

    def as_dict(self) -> dict[str, Any]:
        """The settings by field name (e.g. for a findings export): threshold, method, and every
        other one that the method uses or that is not at its default (missing ones are defaults)."""
        return {f.name: getattr(self, f.name) for f in self._shown()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GroupingSettings:
        """Settings from :meth:`as_dict`'s output (of this or an earlier version).

        Records without ``method`` come from before it was always named: while
        ``components`` was the default, the method was written only when it was
        ``peaks`` and the ``peaks`` fields only when not at their defaults; in the
        short while ``peaks`` was the default without its name, its fields were
        always written. So a record without a method is ``peaks`` when it holds a
        ``peaks`` field at its default value, else ``components``.
        """
        values = dict(values)
        if "method" not in values:
            peaks_defaults = [f for f in dataclasses.fields(cls) if f.metadata["peaks"] and f.name in values]
            at_default = any(values[f.name] == f.default for f in peaks_defaults)
            values["method"] = "peaks" if at_default else "components"
        return cls(**values)

    def non_defaults(self) -> dict[str, Any]:
        """The settings that differ from their defaults, by field name (what a user changed).

        Not an identity: a changed default changes what it leaves out, so the
        evaluation cache's fingerprint uses :meth:`as_dict` instead.
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}

    def describe(self) -> str:
        """Words for a status line or report, e.g. ``"threshold 0.50, method peaks, merge mm 5.00, ..."``
        (the fields of :meth:`as_dict`)."""
        parts = []
        for f in self._shown():
            value = getattr(self, f.name)
            parts.append(f"{f.metadata['label']} {value:.2f}" if isinstance(value, float) else f"{f.metadata['label']} {value}")
        return ", ".join(parts)


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of a :class:`~engine.detection.Detector`.

    Args:
        grouping: How candidates are grouped from the segmentation (threshold, erosion, method).
        precision: ``"auto"`` (float16 autocast on GPU, float32 on CPU),
            ``"float32"``, ``"bfloat16"`` or ``"float16"`` (see :mod:`engine.devices`).
        seg_batch_size: Slices per segmentation batch (None: 32 on GPU, 2 on CPU, where
            small batches stay in cache and run faster).
        cls_batch_size: Crops per classification batch (None: 256 on GPU, 8 on CPU).
        lung_region: Segment only slices with lung, inside a window around the
            lungs (:mod:`engine.detection.lung`); False segments every slice in full.
        fold_batch_norms: Run the segmentation model with its batch norms folded
            into the convolutions (:mod:`engine.models.folded`; same output up to
            float rounding, about 15% faster on the CPU).
        threads: CPU threads for torch (None: torch's default, the core count).
        cpu_streams: On the CPU, how many batches the torch stages (segmentation,
            classification, malignancy) run at once, each on its own worker thread
            with one intra-op thread (:mod:`engine.detection.runtime`); None: one
            stream per thread (the faster way on the 2-core dev CPU, same output);
            1: one batch at a time on all threads. Ignored on GPUs and for ONNX Runtime.
        backend: Which runtime runs the models, one of :data:`BACKENDS`: ``torch``,
            ``onnx`` (ONNX Runtime on models exported on first use,
            :mod:`engine.detection.onnx_backend`) or ``auto`` (per stage the faster
            on this device, as measured in docs/benchmarks.md).

    Raises:
        TypeError: ``grouping`` is not a :class:`GroupingSettings`.
        ValueError: ``backend`` is not one of :data:`BACKENDS`, or ``cpu_streams`` < 1.
    """

    grouping: GroupingSettings = field(default_factory=GroupingSettings)
    precision: str = "auto"
    seg_batch_size: int | None = None
    cls_batch_size: int | None = None
    lung_region: bool = True
    fold_batch_norms: bool = True
    threads: int | None = None
    backend: str = "torch"
    cpu_streams: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.grouping, GroupingSettings):
            raise TypeError(f"grouping must be a GroupingSettings, got {type(self.grouping).__name__}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        if self.cpu_streams is not None and int(self.cpu_streams) < 1:
            raise ValueError(f"cpu_streams must be at least 1 (or None), got {self.cpu_streams}")
