"""One phantom series: plan everything from the seed, render the voxels, return the CT and its truth.

:func:`plan_series` decides everything that is not a voxel — patient,
scan settings, vessel and airway trees, bones, nodules with their readers'
ratings, excluded findings and candidates — in milliseconds, so statistics
over many series (candidate rates, malignancy) need no rendering.
:func:`render_plan` draws the plan into a volume; :func:`generate_series`
does both and returns what every loader of the project reads: a
:class:`~engine.io.ct.CtVolume` and a :class:`~engine.phantom.truth.PhantomTruth`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from engine.io.volume import CtVolume
from engine.geometry import xyz_to_irc
from engine.phantom.airways import Airways, build_airways
from engine.phantom.bones import rib_tubes
from engine.phantom.candidates import CandidateSet, make_candidates
from engine.phantom.config import Frame, NoduleRequest, SeriesConfig, apply_overrides, sample_config, stream
from engine.phantom.distributions import sample_location
from engine.phantom.findings import FindingSpec, make_findings
from engine.phantom.malignancy import NoduleLook, is_malignant, rate, sample_look
from engine.phantom.mediastinum import esophagus, great_vessels
from engine.phantom.nodules import NoduleBody, make_body, render_body
from engine.phantom.patient import PatientParams, sample_patient
from engine.phantom.physics import acquire
from engine.phantom.placement import NodulePlacer, Placement
from engine.phantom.raster import blend, render_anatomy
from engine.phantom.thorax import RIGHT, Thorax
from engine.phantom.tissues import Tissue, TissueValues, sample_tissue_values
from engine.phantom.truth import PhantomCandidate, PhantomFinding, PhantomNodule, PhantomTruth
from engine.phantom.tubes import TubeSet, rasterize
from engine.phantom.vessels import VesselTree, grow_lung_vessels

#: Version of the generator's output; bump when the same seed would give other voxels.
PHANTOM_VERSION = 1

Progress = Callable[[float, str], None]


def series_uid(seed: int) -> str:
    """The synthetic series uid of phantom ``seed``: ``2.25.<integer>`` (a UUID-derived OID).

    Derived from a hash of the seed, so it is stable, unique per seed and never
    an LIDC uid.
    """
    digest = hashlib.sha256(f"lungcad-phantom-series:{int(seed)}".encode()).digest()
    value = int.from_bytes(digest[:16], "big") >> 2  # 126 bits, at most 38 digits
    return f"2.25.{value}"


@dataclass(frozen=True)
class PlannedNodule:
    """A nodule of the plan: how it looks, where it is, its geometry and ratings."""

    look: NoduleLook
    placement: Placement
    body: NoduleBody
    ratings: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class SeriesPlan:
    """Everything about a series except its voxels (see :func:`plan_series`)."""

    config: SeriesConfig
    patient: PatientParams
    frame: Frame
    thorax: Thorax
    tissues: TissueValues
    trees: tuple[VesselTree, ...]
    great_vessels: TubeSet
    esophagus: tuple[TubeSet, TubeSet]
    airways: Airways
    bones: tuple[TubeSet, TubeSet, TubeSet]
    nodules: tuple[PlannedNodule, ...]
    findings: tuple[FindingSpec, ...]
    candidates: CandidateSet


def _looks(config: SeriesConfig, rng: np.random.Generator) -> list[tuple[NoduleLook, str]]:
    requests = config.nodules if config.nodules is not None else (NoduleRequest(),) * config.n_nodules
    out = []
    for req in requests:
        look = sample_look(rng, req.diameter_mm)
        kind = req.kind or look.kind
        shape = req.shape or look.shape
        calcified = look.calcified if req.calcified is None else req.calcified
        calcified = calcified and kind == "solid"
        out.append((NoduleLook(look.diameter_mm, kind, shape, calcified), req.location or sample_location(rng)))
    return out


def plan_series(seed: int, preset: str = "standard", **overrides: Any) -> SeriesPlan:
    """Plan series ``seed``: anatomy, trees, nodules, ratings, findings, candidates.

    Args:
        seed: Any non-negative integer.
        preset: ``"standard"`` or ``"small"``.
        **overrides: :class:`~engine.phantom.config.SeriesConfig` fields to force
            (e.g. ``nodules=[{"diameter_mm": 12, "kind": "solid"}]``, ``flip_xyz=(False, False, True)``).

    Raises:
        ValueError: unknown preset or out-of-range override; TypeError: unknown override.
    """
    patient = sample_patient(stream(seed, "patient"))
    config = apply_overrides(sample_config(seed, preset, patient), overrides)
    frame = Frame.from_config(config, patient)
    thorax = Thorax(patient)
    tissues = sample_tissue_values(stream(seed, "tissues"))
    vessel_rng = stream(seed, "vessels")
    trees = tuple(grow_lung_vessels(thorax, vessel_rng, config.tree_points))
    great = great_vessels(thorax, vessel_rng)
    airway_rng = stream(seed, "airways")
    airways = build_airways(thorax, [t for t in trees if t.kind == "artery"], airway_rng)
    eso = esophagus(thorax, airway_rng)
    bones = rib_tubes(thorax, stream(seed, "bones"))
    nodule_rng = stream(seed, "nodules")
    reader_rng = stream(seed, "readers")
    placer = NodulePlacer(thorax, list(trees), airways.wall, nodule_rng)
    nodules = []
    for look, location in _looks(config, nodule_rng):
        place = placer.place(look.diameter_mm, location)
        body = make_body(place.center, look.diameter_mm, look.kind, look.shape, look.calcified, nodule_rng)
        nodules.append(PlannedNodule(look, place, body, rate(look, reader_rng)))
    findings = make_findings(thorax, stream(seed, "findings"), config.n_findings)
    candidates = make_candidates(
        thorax, list(trees), airways,
        [(n.body.center, n.look.diameter_mm) for n in nodules],
        [f.body.center for f in findings],
        config.n_candidates, stream(seed, "candidates"),
    )
    return SeriesPlan(config, patient, frame, thorax, tissues, trees, great, eso, airways, bones,
                      tuple(nodules), tuple(findings), candidates)


def render_plan(plan: SeriesPlan, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw a plan into voxels.

    Args:
        plan: From :func:`plan_series`.
        progress: ``progress(fraction, text)`` callable.

    Returns:
        ``(hu int16, labels uint8)``, both ``(z, y, x)`` in *canonical*
        orientation (use ``plan.frame.to_stored`` for the file's orientation).
    """
    report = progress or (lambda f, t: None)
    frame, tv = plan.frame, plan.tissues
    seed = plan.config.seed
    report(0.0, "anatomy")
    labels, hu = render_anatomy(frame, plan.thorax, tv, stream(seed, "texture"),
                                progress=lambda f: report(0.45 * f, "anatomy"))
    scratch = np.zeros(labels.size, dtype=np.uint8)

    def paint(tubes: TubeSet, value: float, tissue: Tissue, allowed: tuple[Tissue, ...]) -> None:
        idx, cover = rasterize(tubes, frame, scratch)
        blend(hu, labels, idx, cover, value, tissue, allowed)

    report(0.45, "bones")
    outer, inner, cartilage = plan.bones
    soft = (Tissue.MUSCLE, Tissue.FAT)
    paint(outer, tv[Tissue.BONE_CORTICAL], Tissue.BONE_CORTICAL, soft + (Tissue.SKIN,))
    paint(inner, tv[Tissue.BONE_TRABECULAR], Tissue.BONE_TRABECULAR, (Tissue.BONE_CORTICAL,))
    paint(cartilage, tv[Tissue.CARTILAGE], Tissue.CARTILAGE, soft)
    report(0.5, "mediastinum")
    paint(plan.great_vessels, tv[Tissue.VESSEL], Tissue.VESSEL,
          (Tissue.FAT, Tissue.LUNG, Tissue.MUSCLE, Tissue.HEART, Tissue.LIVER))
    wall, lumen = plan.esophagus
    paint(wall, tv[Tissue.MUSCLE], Tissue.MUSCLE, (Tissue.FAT, Tissue.LUNG))
    paint(lumen, -1000.0, Tissue.AIR, (Tissue.MUSCLE,))
    report(0.53, "vessels")
    vessels = TubeSet.concat([t.tubes for t in plan.trees])
    generation = np.concatenate([t.tube_generation for t in plan.trees])
    paint(vessels.select(generation <= 1), tv[Tissue.VESSEL], Tissue.VESSEL, (Tissue.LUNG, Tissue.FAT))
    paint(vessels.select(generation > 1), tv[Tissue.VESSEL], Tissue.VESSEL, (Tissue.LUNG,))
    report(0.62, "airways")
    paint(plan.airways.wall, tv[Tissue.AIRWAY_WALL], Tissue.AIRWAY_WALL, (Tissue.LUNG, Tissue.FAT, Tissue.MUSCLE))
    paint(plan.airways.lumen, tv[Tissue.AIRWAY_LUMEN], Tissue.AIRWAY_LUMEN,
          (Tissue.AIRWAY_WALL, Tissue.LUNG, Tissue.FAT, Tissue.MUSCLE))
    report(0.66, "nodules")
    for nodule in plan.nodules:
        idx, cover, value = render_body(nodule.body, frame)
        blend(hu, labels, idx, cover, value, Tissue.NODULE, (Tissue.LUNG, Tissue.VESSEL, Tissue.AIRWAY_WALL),
              mode="max")
    for finding in plan.findings:
        idx, cover, value = render_body(finding.body, frame)
        blend(hu, labels, idx, cover, value, Tissue.FINDING, (Tissue.LUNG, Tissue.VESSEL), mode="max")
    del scratch
    report(0.7, "noise and blur")
    c = plan.config
    noise_seed = int(stream(seed, "noise").integers(2**62))
    out = acquire(hu, frame, c.blur_weight, c.noise_sigma, c.pad_value, noise_seed,
                  progress=lambda f: report(0.7 + 0.3 * f, "noise and blur"))
    report(1.0, "done")
    return out, labels


def _world_bbox(frame: Frame, body: NoduleBody) -> tuple[tuple[float, ...], tuple[float, ...]]:
    ext = body.extent
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * ext
    world = frame.patient_to_world(body.center + corners)
    return tuple(float(v) for v in world.min(axis=0)), tuple(float(v) for v in world.max(axis=0))


def truth_of(plan: SeriesPlan, labels_stored: np.ndarray | None = None) -> PhantomTruth:
    """The truth of a plan (coordinates of the stored volume); labels when it was rendered."""
    frame = plan.frame
    geometry = frame.geometry()
    nodules = []
    for n in plan.nodules:
        xyz = frame.patient_to_world(n.body.center)
        low, high = _world_bbox(frame, n.body)
        nodules.append(PhantomNodule(
            center_xyz=tuple(float(v) for v in xyz),
            center_irc=tuple(int(v) for v in xyz_to_irc(geometry, xyz)),
            diameter_mm=round(n.look.diameter_mm, 4),
            kind=n.look.kind,
            shape=n.look.shape,
            location=n.placement.location,
            ratings=n.ratings,
            is_malignant=is_malignant(n.ratings),
            bbox_low_xyz=low,
            bbox_high_xyz=high,
            calcified=n.look.calcified,
            side="right" if n.placement.side == RIGHT else "left",
        ))
    excluded = []
    for f in plan.findings:
        xyz = frame.patient_to_world(f.body.center)
        excluded.append(PhantomFinding(tuple(float(v) for v in xyz), tuple(int(v) for v in xyz_to_irc(geometry, xyz)),
                                       f.listed_diameter, f.kind))
    world = frame.patient_to_world(plan.candidates.points) if plan.candidates.points.size else np.zeros((0, 3))
    candidates = tuple(
        PhantomCandidate((float(p[0]), float(p[1]), float(p[2])), int(lab), str(src))
        for p, lab, src in zip(world, plan.candidates.label, plan.candidates.source)
    )
    c = plan.config
    return PhantomTruth(
        seed=c.seed, preset=c.preset, series_uid=series_uid(c.seed), nodules=tuple(nodules),
        excluded=tuple(excluded), candidates=candidates, labels=labels_stored,
        noise_sigma=c.noise_sigma, flipped_xyz=c.flip_xyz,
    )


def generate_series(
    seed: int, preset: str = "standard", *, progress: Progress | None = None, **overrides: Any
) -> tuple[CtVolume, PhantomTruth]:
    """Generate one synthetic chest CT and its ground truth, deterministically from ``seed``.

    Args:
        seed: Any non-negative integer; the same seed (and overrides) gives
            identical voxels on every run.
        preset: ``"standard"`` (512×512, 100–450 slices, LUNA16-like spacing) or
            ``"small"`` (160×160×64, for tests).
        progress: Optional ``progress(fraction, text)`` callable.
        **overrides: Scan settings to force (see :func:`plan_series`).

    Returns:
        ``(ct, truth)``: the volume (``int16`` HU, (index, row, col), LPS
        geometry, possibly with flipped axes) and its :class:`PhantomTruth`.

    Raises:
        ValueError, TypeError: bad preset or overrides.
    """
    plan = plan_series(seed, preset, **overrides)
    hu, labels = render_plan(plan, progress)
    stored_hu = np.ascontiguousarray(plan.frame.to_stored(hu))
    stored_labels = np.ascontiguousarray(plan.frame.to_stored(labels))
    del hu, labels
    uid = series_uid(seed)
    ct = CtVolume(
        hu=stored_hu,
        geometry=plan.frame.geometry(),
        series_uid=uid,
        header={"Manufacturer": "LungCAD phantom", "SeriesDescription": f"synthetic chest CT, seed {seed} ({preset})"},
        notes=(f"synthetic phantom (generator version {PHANTOM_VERSION}, seed {seed}, preset {preset})",),
    )
    return ct, truth_of(plan, stored_labels)
