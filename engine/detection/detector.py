"""The detector: segmentation → grouping → nodule classifier → malignancy (SPEC §4).

>>> detector = Detector.from_checkpoints("seg.pt", "cls.pt", "mal.pt", device="auto")
>>> result = detector.detect(load_ct("scan.mhd"), progress=print)
>>> [c for c in result.candidates if c.p_nodule >= 0.5]

Every candidate is returned with both probabilities; thresholds are the
consumer's. ``regroup`` re-derives the candidates with other
:class:`~engine.detection.settings.GroupingSettings` (threshold, erosion) from
the stored probability volume without segmenting again.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from engine.crops import CLASSIFIER_CROP, crop_starts
from engine.detection.classify import KEEP_FEATURES_MAX, classify_crops, feature_size, shared_trunk_depth
from engine.detection.grouping import Components, carried_probabilities, group_components, make_candidates
from engine.detection.loading import ModelSource, load_models
from engine.detection.lung import LungRegion, find_lung_region, whole_volume
from engine.detection.onnx_backend import classify_crops_onnx, load_session, stage_backends
from engine.detection.result import Candidate, DetectionResult
from engine.detection.run_state import REGROUP_SPAN, DetectionRun as _Run
from engine.detection.runtime import Cancelled, Progress, StageOutOfMemory  # noqa: F401 (tests patch it here)
from engine.detection.segment import empty_levels, levels_to_numpy, segment_slices
from engine.detection.settings import DetectorConfig, GroupingSettings
from engine.detection.weights import checkpoint_paths
from engine.devices import PrecisionPolicy, cpu_threads, precision_policy, resolve_device
from engine.geometry import xyz_to_irc_continuous
from engine.io.volume import CtVolume
from engine.lesion_shape import shape_aware_at
from engine.lesion_size import size_aware_at
from engine.models.classifier import NoduleClassifier
from engine.models.folded import FoldedSegmentation, can_fold
from engine.models.segmentation import SegmentationModel

__all__ = ["Detector", "DetectorConfig", "ModelSource"]

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
        config: Grouping, precision, batch sizes, lung region, backend (torch or ONNX Runtime).

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
        models, ids = load_models({"segmentation": segmentation, "classifier": classifier, "malignancy": malignancy})
        self.segmentation: SegmentationModel = models["segmentation"]
        self.classifier: NoduleClassifier = models["classifier"]
        self.malignancy: NoduleClassifier = models["malignancy"]
        self.model_ids: dict[str, str] = ids
        self.shared_depth = shared_trunk_depth(self.classifier, self.malignancy)
        self._segmenter: nn.Module = self.segmentation
        if self.config.fold_batch_norms and can_fold(self.segmentation):
            self._segmenter = FoldedSegmentation(self.segmentation)
        self._placement: dict[int, tuple[torch.device, torch.memory_format]] = {}
        #: ``{stage: "torch" | "onnx"}``: the runtime of the segmentation and classification stages.
        self.backends: dict[str, str] = stage_backends(self.config.backend, self.device)
        self._sessions: dict[tuple[str, str], object] = {}

    # --- construction -----------------------------------------------------------------
    @classmethod
    def from_checkpoints(
        cls,
        segmentation: str | Path | None = None,
        classifier: str | Path | None = None,
        malignancy: str | Path | None = None,
        *,
        device: str | torch.device = "auto",
        config: DetectorConfig | None = None,
    ) -> Detector:
        """Build from checkpoint files (ours or the book's ``.state`` files); None: the demo weights.

        Args:
            segmentation: Segmentation checkpoint, or None for the demo weights in ``resources/models``.
            classifier: Nodule classifier checkpoint, or None.
            malignancy: Malignancy classifier checkpoint, or None.
            device: As for :class:`Detector`.
            config: As for :class:`Detector`.

        Raises:
            CheckpointError: a file is missing (one message naming each role and
                path, see :func:`~engine.detection.weights.checkpoint_paths`) or unusable.
            DeviceError: the device is not available.
        """
        paths = checkpoint_paths(segmentation, classifier, malignancy)
        return cls(paths["segmentation"], paths["classifier"], paths["malignancy"], device=device, config=config)

    @classmethod
    def default(cls, device: str | torch.device = "auto", config: DetectorConfig | None = None) -> Detector:
        """Build from the demo weights shipped in ``resources/models`` (:meth:`from_checkpoints` with none given)."""
        return cls.from_checkpoints(device=device, config=config)

    def compile(self, mode: str | None = None, backend: str = "inductor") -> None:
        """Run the torch segmentation model through ``torch.compile`` from now on (off by default).

        For GPUs: ``mode="reduce-overhead"`` adds CUDA graphs. Shapes are dynamic
        (the lung windows differ per batch). The compilation happens in the first
        :meth:`detect` (time it apart: ``bench --compile`` reports the warm-up run).
        The classifiers stay eager (their trunk is split between two stages).

        Args:
            mode: ``torch.compile``'s mode (None, ``"reduce-overhead"``, ``"max-autotune"``).
            backend: ``torch.compile``'s backend (``"eager"`` only traces, for tests).
        """
        model = self._placed(self._segmenter, self.policy)
        self._segmenter = torch.compile(model, mode=mode, backend=backend, dynamic=True)
        self._placement[id(self._segmenter)] = self._placement[id(model)]

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
            lambda device: group_components(levels, ct.hu, self.config.grouping, ct.geometry.spacing_irc),
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
            grouping=self.config.grouping,
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
                "backends": dict(self.backends),
                "cpu_streams": {stage: self.stage_streams(run.device_used, stage) for stage in self.backends},
            },
        )

    def regroup(
        self,
        result: DetectionResult,
        ct: CtVolume,
        grouping: GroupingSettings,
        progress: Progress | None = None,
        cancelled: Cancelled | None = None,
    ) -> DetectionResult:
        """Candidates of ``result`` grouped with other settings, without segmenting again.

        Components whose crop is the same as one of ``result``'s candidates (same
        crop start) keep their probabilities when the models are the same;
        new ones are classified.

        Args:
            result: A result of :meth:`detect` on ``ct``.
            ct: The same CT.
            grouping: The new grouping settings (threshold, erosion).
            progress: As for :meth:`detect`.
            cancelled: As for :meth:`detect`.

        Returns:
            A new result with the new candidates and grouping, the same probability volume.

        Raises:
            ValueError: a result of another volume.
            TypeError: ``grouping`` is not a :class:`GroupingSettings`.
        """
        if tuple(result.shape) != ct.shape:
            raise ValueError(f"the result is for a {result.shape} volume, the CT is {ct.shape}")
        if not isinstance(grouping, GroupingSettings):
            raise TypeError(f"grouping must be a GroupingSettings, got {type(grouping).__name__}")
        with cpu_threads(self.config.threads):
            return self._regroup(result, ct, grouping, progress, cancelled)

    def _regroup(
        self,
        result: DetectionResult,
        ct: CtVolume,
        grouping: GroupingSettings,
        progress: Progress | None,
        cancelled: Cancelled | None,
    ) -> DetectionResult:
        run = _Run(self, ct, progress, cancelled, spans=REGROUP_SPAN)
        began = time.perf_counter()
        components = run.timed(
            "grouping",
            "grouping",
            lambda device: group_components(result.seg_probability, ct.hu, grouping, ct.geometry.spacing_irc),
        )
        previous = result if dict(result.model_ids) == self.model_ids else None
        candidates = self._classify(run, components, previous)
        run.timings["total"] = time.perf_counter() - began
        return replace(
            result,
            candidates=candidates,
            grouping=grouping,
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
            return self._classify_starts(_Run(self, ct, None, None), starts, centers_irc)

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
        if self.backends["segmentation"] == "onnx":
            model, policy = self._session("segmentation", run), replace(run.policy, channels_last=False)
        else:
            model, policy = self._placed(self._segmenter, run.policy), run.policy
        segment_slices(
            model,
            run.volume(device),
            region,
            levels,
            policy=policy,
            batch_size=self.config.seg_batch_size or (32 if device.type != "cpu" else 2),
            reporter=run.reporter("segmentation"),
            notes=run.notes,
            streams=self.stage_streams(device, "segmentation"),
        )
        return levels

    def _classify(self, run: _Run, components: Components, previous: DetectionResult | None) -> tuple[Candidate, ...]:
        ct = run.ct
        starts = crop_starts(components.centers_irc, CLASSIFIER_CROP, ct.shape)
        # with a shape head, p_nodule also depends on the region: carried only for the same crop and region
        counts = components.voxel_counts if self.classifier.shape_coefficients() is not None else None
        p_nodule, p_malignant = carried_probabilities(previous, starts, CLASSIFIER_CROP, counts)
        todo = np.flatnonzero(np.isnan(p_nodule))
        p_nodule[todo], p_malignant[todo] = self._classify_starts(
            run, starts[todo], components.centers_irc[todo], components.voxel_counts[todo]
        )
        return make_candidates(components, ct.geometry, p_nodule, p_malignant)

    def _classify_starts(
        self, run: _Run, starts: np.ndarray, centers_irc: np.ndarray, voxel_counts: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both probabilities for crops at ``starts`` (N, 3) around ``centers_irc`` (N, 3); identical
        crops are classified once (the heads, if any, measure each candidate at its own centre; the
        shape head needs the candidates' region sizes ``voxel_counts``: None for points)."""
        p_nodule, p_malignant = self._classify_unique(run, starts)
        return self._shape_aware(run, centers_irc, voxel_counts, p_nodule), self._size_aware(run, centers_irc, p_malignant)

    def _classify_unique(self, run: _Run, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts, inverse = np.unique(starts, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        depth = self.shared_depth
        keep = depth >= 2 and feature_size(self.classifier, depth) <= KEEP_FEATURES_MAX
        kept: list[torch.Tensor] = []
        batch = self.config.cls_batch_size
        if self.backends["classification"] == "onnx":
            return self._classify_starts_onnx(run, starts, inverse)

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
                streams=self.stage_streams(device, "classification"),
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
                streams=self.stage_streams(device, "classification"),
            )

        p_nodule = run.timed("classification", "classification", nodule)
        p_malignant = run.timed("malignancy", "malignancy", malignant)
        return p_nodule[inverse], p_malignant[inverse]

    def _classify_starts_onnx(self, run: _Run, starts: np.ndarray, inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both probabilities in ONNX Runtime: each model on the crops (no shared trunk there)."""
        size = self.config.cls_batch_size

        def stage(role: str, stage_name: str) -> Callable[[torch.device], np.ndarray]:
            def work(device: torch.device) -> np.ndarray:
                return classify_crops_onnx(
                    self._session(role, run),
                    run.volume(device),
                    starts,
                    batch_size=size or (256 if device.type != "cpu" else 8),
                    reporter=run.reporter(stage_name),
                    notes=run.notes,
                )

            return work

        p_nodule = run.timed("classification", "classification", stage("classifier", "classification"))
        p_malignant = run.timed("malignancy", "malignancy", stage("malignancy", "malignancy"))
        return p_nodule[inverse], p_malignant[inverse]

    def _size_aware(self, run: _Run, centers_irc: np.ndarray, p_cnn: np.ndarray) -> np.ndarray:
        """The malignancy model's size head applied to its CNN's ``p_cnn`` (unchanged without one);
        its time is added to the malignancy stage's."""
        began = time.perf_counter()
        ct = run.ct
        p = size_aware_at(self.malignancy.size_coefficients(), p_cnn, ct.hu, ct.geometry.spacing_irc, centers_irc)
        run.timings["malignancy"] = run.timings.get("malignancy", 0.0) + time.perf_counter() - began
        return p

    def _shape_aware(
        self, run: _Run, centers_irc: np.ndarray, voxel_counts: np.ndarray | None, p_cnn: np.ndarray
    ) -> np.ndarray:
        """The nodule classifier's shape head applied to its CNN's ``p_cnn`` (unchanged without one,
        or for points); its time is added to the classification stage's."""
        began = time.perf_counter()
        ct = run.ct
        p = shape_aware_at(
            self.classifier.shape_coefficients(), p_cnn, ct.hu, ct.geometry.spacing_irc, centers_irc, voxel_counts
        )
        run.timings["classification"] = run.timings.get("classification", 0.0) + time.perf_counter() - began
        return p

    def stage_streams(self, device: torch.device, stage: str) -> int:
        """Batches the torch ``stage`` runs at once on ``device`` (:attr:`DetectorConfig.cpu_streams`)."""
        if device.type != "cpu" or self.backends[stage] != "torch":
            return 1
        return int(self.config.cpu_streams or torch.get_num_threads())

    def _session(self, role: str, run: _Run):
        """The ONNX Runtime model of ``role`` on the run's device (exported and checked on first use)."""
        device = run.policy.device
        key = (role, str(device))
        if key not in self._sessions:
            model = {"segmentation": self.segmentation, "classifier": self.classifier, "malignancy": self.malignancy}[role]
            threads = self.config.threads or torch.get_num_threads()
            self._sessions[key] = load_session(model, role, device, threads, run.notes)
        note = f"{role}: ONNX Runtime runs float32 (the {run.policy.name} precision applies to the torch stages)"
        if run.policy.autocast_dtype is not None and note not in run.notes:
            run.notes.append(note)
        return self._sessions[key]

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
