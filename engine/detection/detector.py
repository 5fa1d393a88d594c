"""The detector: segmentation → grouping → nodule classifier → malignancy (SPEC §4).

>>> detector = Detector.from_checkpoints("seg.pt", "cls.pt", "mal.pt", device="auto")
>>> result = detector.detect(load_ct("scan.mhd"), progress=print)
>>> [c for c in result.candidates if c.p_nodule >= 0.5]

Every candidate is returned with both probabilities; thresholds are the
consumer's. ``regroup`` re-derives the candidates at another segmentation
threshold from the stored probability volume without segmenting again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from engine.checkpoints import Checkpoint, load_checkpoint, model_weights_id
from engine.crops import CLASSIFIER_CROP, crop_starts
from engine.io.volume import CtVolume
from engine.detection.classify import KEEP_FEATURES_MAX, classify_crops, feature_size, shared_trunk_depth
from engine.detection.grouping import Components, check_erosion, equivalent_diameter_mm, group_components
from engine.detection.lung import LungRegion, find_lung_region, whole_volume
from engine.detection.result import Candidate, DetectionResult
from engine.detection.runtime import Cancelled, Progress, StageOutOfMemory, StageReporter, synchronize, tensor_view
from engine.detection.segment import empty_levels, levels_to_numpy, segment_slices
from engine.devices import PrecisionPolicy, cpu_threads, precision_policy, resolve_device
from engine.errors import CheckpointError, DeviceError
from engine.geometry import irc_to_xyz, xyz_to_irc_continuous
from engine.models.classifier import NoduleClassifier
from engine.models.folded import FoldedSegmentation, can_fold
from engine.models.segmentation import SegmentationModel
from engine.paths import MODELS_DIR

#: File names of the demo weights in ``resources/models``.
DEFAULT_WEIGHTS = {"segmentation": "segmentation.pt", "classifier": "classifier.pt", "malignancy": "malignancy.pt"}
#: Overall progress fraction span of each stage of :meth:`Detector.detect`.
_STAGE_SPAN = {
    "lung search": (0.0, 0.02),
    "segmentation": (0.02, 0.75),
    "grouping": (0.75, 0.78),
    "classification": (0.78, 0.92),
    "malignancy": (0.92, 1.0),
}
#: The same for :meth:`Detector.regroup` (no lung search or segmentation).
_REGROUP_SPAN = {"grouping": (0.0, 0.15), "classification": (0.15, 0.85), "malignancy": (0.85, 1.0)}


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of a :class:`Detector`.

    Args:
        seg_threshold: Segmentation probability threshold for grouping.
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
        erosion: Erosion before grouping, one of
            :data:`~engine.detection.grouping.EROSIONS` (``3d``: SPEC §4, the book's).
    """

    seg_threshold: float = 0.5
    precision: str = "auto"
    seg_batch_size: int | None = None
    cls_batch_size: int | None = None
    lung_region: bool = True
    fold_batch_norms: bool = True
    threads: int | None = None
    erosion: str = "3d"

    def __post_init__(self) -> None:
        check_erosion(self.erosion)


ModelSource = nn.Module | Checkpoint | str | Path


class Detector:
    """Runs the three models on a CT and returns every candidate.

    The models are used in eval mode and moved to the device (and memory
    layout) they run in; the inference copy of the segmentation model (with
    folded batch norms) is made here, so build a new detector after changing
    the weights.

    Args:
        segmentation: The segmentation model, a loaded checkpoint, or a checkpoint path.
        classifier: The nodule classifier (same forms).
        malignancy: The malignancy classifier (same forms).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"`` or a ``torch.device``.
        config: Thresholds, precision, batch sizes, lung region.

    Raises:
        DeviceError: the device is not available.
        CheckpointError (and subclasses): a checkpoint cannot be used.
    """

    def __init__(
        self,
        segmentation: ModelSource,
        classifier: ModelSource,
        malignancy: ModelSource,
        device: str | torch.device = "auto",
        config: DetectorConfig | None = None,
    ) -> None:
        self.config = config or DetectorConfig()
        self.device = resolve_device(device)
        self.policy = precision_policy(self.device, self.config.precision)
        models = {}
        ids = {}
        for kind, source, cls in (
            ("segmentation", segmentation, SegmentationModel),
            ("classifier", classifier, NoduleClassifier),
            ("malignancy", malignancy, NoduleClassifier),
        ):
            model, ids[kind] = _as_model(source, kind)
            if not isinstance(model, cls):
                raise CheckpointError(f"the {kind} model must be a {cls.__name__}, got {type(model).__name__}")
            models[kind] = model.eval()
        self.segmentation: SegmentationModel = models["segmentation"]
        self.classifier: NoduleClassifier = models["classifier"]
        self.malignancy: NoduleClassifier = models["malignancy"]
        self.model_ids: dict[str, str] = ids
        self.shared_depth = shared_trunk_depth(self.classifier, self.malignancy)
        self._segmenter: nn.Module = self.segmentation
        if self.config.fold_batch_norms and can_fold(self.segmentation):
            self._segmenter = FoldedSegmentation(self.segmentation)
        self._placement: dict[int, tuple[torch.device, torch.memory_format]] = {}

    # --- construction -----------------------------------------------------------------
    @classmethod
    def from_checkpoints(
        cls,
        segmentation: str | Path,
        classifier: str | Path,
        malignancy: str | Path,
        device: str | torch.device = "auto",
        config: DetectorConfig | None = None,
    ) -> Detector:
        """Build from three checkpoint files (ours or the book's ``.state`` files)."""
        return cls(Path(segmentation), Path(classifier), Path(malignancy), device=device, config=config)

    @classmethod
    def default(cls, device: str | torch.device = "auto", config: DetectorConfig | None = None) -> Detector:
        """Build from the demo weights shipped in ``resources/models``.

        Raises:
            CheckpointError: the demo weights are not there.
        """
        paths = default_weight_paths()
        missing = [str(p) for p in paths.values() if not p.exists()]
        if missing:
            raise CheckpointError(
                "the demo model weights are missing (" + ", ".join(missing) + "). They are trained on "
                "synthetic phantoms with `python main.py train` (README: Training) and shipped in "
                f"{MODELS_DIR}; meanwhile give your own checkpoints (--seg/--cls/--mal, or Models in the "
                "viewer; the book's .state files work too)"
            )
        return cls.from_checkpoints(paths["segmentation"], paths["classifier"], paths["malignancy"], device, config)

    # --- running ------------------------------------------------------------------------
    def detect(self, ct: CtVolume, progress: Progress | None = None, cancelled: Cancelled | None = None) -> DetectionResult:
        """Find and classify every candidate in ``ct``.

        Args:
            ct: The CT (int16 HU, index/row/col).
            progress: Called as ``progress(fraction, stage_text)`` during the run.
            cancelled: Polled between batches; when it returns True the run stops.

        Returns:
            The result (all candidates, probability volume, timings, device, model ids).

        Raises:
            CancelledError: ``cancelled()`` returned True.
            DeviceError: memory ran out even on the CPU.
        """
        with cpu_threads(self.config.threads):
            return self._detect(ct, progress, cancelled)

    def _detect(self, ct: CtVolume, progress: Progress | None, cancelled: Cancelled | None) -> DetectionResult:
        run = _Run(self, ct, progress, cancelled)
        began = time.perf_counter()
        region = run.timed("lung_search", "lung search", lambda device: self._region(ct, run.volume(device)))
        levels = run.timed("segmentation", "segmentation", lambda device: self._segment(run, device, region))
        components = run.timed(
            "grouping",
            "grouping",
            lambda device: group_components(levels, ct.hu, self.config.seg_threshold, self.config.erosion),
        )
        levels_np = levels_to_numpy(levels)
        candidates = self._classify(run, components, previous=None)
        run.timings["total"] = time.perf_counter() - began
        if region.found:
            run.notes.insert(0, region.describe(ct.shape))
        elif self.config.lung_region:
            run.notes.insert(0, "no lung found by the air/lung test: every slice was segmented in full")
        else:
            run.notes.insert(0, "lung-region search off: every slice was segmented in full")
        return DetectionResult(
            series_uid=ct.series_uid,
            shape=ct.shape,
            geometry=ct.geometry,
            candidates=candidates,
            seg_probability=levels_np,
            seg_threshold=self.config.seg_threshold,
            erosion=self.config.erosion,
            timings=run.timings,
            device=str(run.device_used),
            model_ids=self.model_ids,
            precision=run.precision_used,
            messages=tuple(run.notes),
            segmented_slices=int(region.slices.size),
            roi_irc=region.box_irc(),
            extra={
                "shared_trunk_stages": self.shared_depth,
                "segmented_voxels": region.voxel_count(),
                "cpu_seconds": dict(run.cpu_seconds),
            },
        )

    def regroup(
        self,
        result: DetectionResult,
        ct: CtVolume,
        seg_threshold: float,
        progress: Progress | None = None,
        cancelled: Cancelled | None = None,
        erosion: str | None = None,
    ) -> DetectionResult:
        """Candidates of ``result`` at another segmentation threshold, without segmenting again.

        Components whose crop is the same as one of ``result``'s candidates (same
        crop start) keep their probabilities when the models are the same;
        new ones are classified.

        Args:
            result: A result of :meth:`detect` on ``ct``.
            ct: The same CT.
            seg_threshold: New threshold in [0, 1].
            progress: As for :meth:`detect`.
            cancelled: As for :meth:`detect`.
            erosion: Erosion to group with (:data:`~engine.detection.grouping.EROSIONS`;
                default: the one ``result`` was grouped with).

        Returns:
            A new result with the new candidates, threshold and erosion, the same probability volume.

        Raises:
            ValueError: a result of another volume, or an unknown erosion.
        """
        if tuple(result.shape) != ct.shape:
            raise ValueError(f"the result is for a {result.shape} volume, the CT is {ct.shape}")
        erosion = check_erosion(result.erosion if erosion is None else erosion)
        with cpu_threads(self.config.threads):
            return self._regroup(result, ct, seg_threshold, progress, cancelled, erosion)

    def _regroup(
        self,
        result: DetectionResult,
        ct: CtVolume,
        seg_threshold: float,
        progress: Progress | None,
        cancelled: Cancelled | None,
        erosion: str,
    ) -> DetectionResult:
        run = _Run(self, ct, progress, cancelled, spans=_REGROUP_SPAN)
        began = time.perf_counter()
        components = run.timed(
            "grouping",
            "grouping",
            lambda device: group_components(result.seg_probability, ct.hu, seg_threshold, erosion),
        )
        previous = result if dict(result.model_ids) == self.model_ids else None
        candidates = self._classify(run, components, previous)
        run.timings["total"] = time.perf_counter() - began
        return replace(
            result,
            candidates=candidates,
            seg_threshold=seg_threshold,
            erosion=erosion,
            timings=run.timings,
            device=str(run.device_used),
            messages=tuple(run.notes),
            extra={**result.extra, "cpu_seconds": dict(run.cpu_seconds)},
        )

    def classify_points(self, ct: CtVolume, centers_xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(p_nodule, p_malignant)``, float64 ``(T,)`` each, of crops centred at given LPS mm points."""
        centers_irc = xyz_to_irc_continuous(ct.geometry, np.asarray(centers_xyz, dtype=np.float64).reshape(-1, 3))
        starts = crop_starts(centers_irc, CLASSIFIER_CROP, ct.shape)
        with cpu_threads(self.config.threads):
            return self._classify_starts(_Run(self, ct, None, None), starts)

    def malignancy_at(self, ct: CtVolume, centers_xyz: np.ndarray) -> np.ndarray:
        """``p_malignant`` (float64 ``(T,)``) at given LPS mm points (the evaluation's ``classify_at``)."""
        return self.classify_points(ct, centers_xyz)[1]

    # --- stages -------------------------------------------------------------------------
    def _region(self, ct: CtVolume, volume: torch.Tensor) -> LungRegion:
        if not self.config.lung_region:
            return whole_volume(ct.shape)
        return find_lung_region(volume, ct.geometry.spacing_irc)

    def _segment(self, run: _Run, device: torch.device, region: LungRegion) -> torch.Tensor:
        levels = empty_levels(run.ct.shape, device)
        segment_slices(
            self._placed(self._segmenter, run.policy),
            run.volume(device),
            region,
            levels,
            policy=run.policy,
            batch_size=self.config.seg_batch_size or (32 if device.type != "cpu" else 2),
            reporter=run.reporter("segmentation"),
            notes=run.notes,
        )
        return levels

    def _classify(self, run: _Run, components: Components, previous: DetectionResult | None) -> tuple[Candidate, ...]:
        ct = run.ct
        starts = crop_starts(components.centers_irc, CLASSIFIER_CROP, ct.shape)
        n = len(components)
        p_nodule = np.full(n, np.nan)
        p_malignant = np.full(n, np.nan)
        if previous is not None and previous.candidates and n:
            old = np.array([c.center_irc for c in previous.candidates])
            known = {
                tuple(s): (c.p_nodule, c.p_malignant)
                for s, c in zip(crop_starts(old, CLASSIFIER_CROP, ct.shape).tolist(), previous.candidates)
            }
            for i, start in enumerate(starts.tolist()):
                if tuple(start) in known:
                    p_nodule[i], p_malignant[i] = known[tuple(start)]
        todo = np.flatnonzero(np.isnan(p_nodule))
        p_nodule[todo], p_malignant[todo] = self._classify_starts(run, starts[todo])
        centers_xyz = irc_to_xyz(ct.geometry, components.centers_irc)
        diameters = equivalent_diameter_mm(components.voxel_counts, ct.geometry.spacing_irc)
        return tuple(
            Candidate(
                id=i + 1,
                center_irc=tuple(float(v) for v in components.centers_irc[i]),
                center_xyz=tuple(float(v) for v in centers_xyz[i]),
                p_nodule=float(p_nodule[i]),
                p_malignant=float(p_malignant[i]),
                voxel_count=int(components.voxel_counts[i]),
                diameter_mm=float(diameters[i]),
                bbox_irc=(
                    tuple(int(v) for v in components.bbox_lo[i]),
                    tuple(int(v) for v in components.bbox_hi[i]),
                ),
            )
            for i in range(n)
        )

    def _classify_starts(self, run: _Run, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both probabilities for crops at ``starts`` (N, 3); identical crops are classified once."""
        starts, inverse = np.unique(starts, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        depth = self.shared_depth
        keep = depth >= 2 and feature_size(self.classifier, depth) <= KEEP_FEATURES_MAX
        kept: list[torch.Tensor] = []
        batch = self.config.cls_batch_size

        def nodule(device: torch.device) -> np.ndarray:
            return classify_crops(
                self._placed(self.classifier, run.policy),
                run.volume(device),
                starts,
                policy=run.policy,
                batch_size=batch or (256 if device.type != "cpu" else 8),
                reporter=run.reporter("classification"),
                notes=run.notes,
                shared_depth=depth,
                keep_features=kept if keep else None,
            )

        def malignant(device: torch.device) -> np.ndarray:
            shared = torch.cat(kept) if keep and kept and kept[0].device == device else None
            kept.clear()
            return classify_crops(
                self._placed(self.malignancy, run.policy),
                run.volume(device),
                starts,
                policy=run.policy,
                batch_size=batch or (256 if device.type != "cpu" else 8),
                reporter=run.reporter("malignancy"),
                notes=run.notes,
                trunk_model=self._placed(self.classifier, run.policy),
                shared_depth=depth,
                shared_features=shared,
            )

        p_nodule = run.timed("classification", "classification", nodule)
        p_malignant = run.timed("malignancy", "malignancy", malignant)
        return p_nodule[inverse], p_malignant[inverse]

    def _placed(self, model: nn.Module, policy: PrecisionPolicy) -> nn.Module:
        """``model`` on the policy's device, in its memory format (moved only when needed)."""
        memory_format = torch.contiguous_format
        if policy.channels_last:
            memory_format = torch.channels_last_3d if isinstance(model, NoduleClassifier) else torch.channels_last
        wanted = (policy.device, memory_format)
        if self._placement.get(id(model)) != wanted:
            model.to(device=policy.device, memory_format=memory_format)
            self._placement[id(model)] = wanted
        return model


class _Run:
    """State of one detect/regroup call: device in use, CT on the device, notes, timings."""

    def __init__(
        self,
        detector: Detector,
        ct: CtVolume,
        progress: Progress | None,
        cancelled: Cancelled | None,
        spans: Mapping[str, tuple[float, float]] = _STAGE_SPAN,
    ) -> None:
        self.detector = detector
        self.spans = spans
        self.ct = ct
        self.progress = progress
        self.cancelled = cancelled
        self.policy = detector.policy
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}  # process CPU time (all threads) per stage
        self._volumes: dict[torch.device, torch.Tensor] = {}

    @property
    def device_used(self) -> torch.device:
        return self.policy.device

    @property
    def precision_used(self) -> str:
        return self.policy.name

    def volume(self, device: torch.device) -> torch.Tensor:
        """The CT as an int16 tensor on ``device`` (one copy per device, a view on the CPU)."""
        if device not in self._volumes:
            self._volumes[device] = tensor_view(self.ct.hu).to(device)
        return self._volumes[device]

    def reporter(self, stage: str) -> StageReporter:
        start, end = self.spans[stage]
        return StageReporter(self.progress, self.cancelled, start, end, stage)

    def timed(self, key: str, stage: str, work: Callable[[torch.device], object]):
        """Run ``work(device)``; on out-of-memory on a GPU, rerun it on the CPU and say so."""
        self.reporter(stage).check()
        began = time.perf_counter()
        cpu_began = time.process_time()
        try:
            value = work(self.policy.device)
        except StageOutOfMemory as exc:
            if self.policy.device.type == "cpu":
                raise DeviceError(f"{exc}: the CT is too large for this computer's memory") from None
            failed = self.policy.device
            cpu = torch.device("cpu")
            self.policy = precision_policy(cpu, "float32")
            self._volumes.pop(failed, None)
            self.notes.append(f"{stage}: out of memory on {failed} even with a batch of 1; fell back to the CPU")
            value = work(cpu)
        synchronize(self.policy.device)
        self.timings[key] = time.perf_counter() - began
        self.cpu_seconds[key] = time.process_time() - cpu_began
        self.reporter(stage).report(1.0)
        return value


def _as_model(source: ModelSource, kind: str) -> tuple[nn.Module, str]:
    if isinstance(source, (str, Path)):
        source = load_checkpoint(source, expected_kind=kind)
    if isinstance(source, Checkpoint):
        if source.kind != kind and not (source.kind in ("classifier", "malignancy") and kind in ("classifier", "malignancy")):
            raise CheckpointError(f"a {source.kind} checkpoint was given as the {kind} model", source.path)
        return source.model, source.model_id.replace(source.kind, kind, 1)
    if isinstance(source, nn.Module):
        return source, model_weights_id(source, kind)
    raise TypeError(f"the {kind} model must be an nn.Module, a Checkpoint or a path, got {type(source).__name__}")


def default_weight_paths() -> Mapping[str, Path]:
    """Where :meth:`Detector.default` looks for the demo weights."""
    return {kind: MODELS_DIR / name for kind, name in DEFAULT_WEIGHTS.items()}
