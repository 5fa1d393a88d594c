"""Presenting an :class:`~engine.evaluation.EvaluationResult`: text, ``report.json``, PNG plots.

The text follows the book's layout for the confusion table; the FROC table
lists sensitivity with its bootstrap interval at each FP rate and the CPM. Plots
are drawn with matplotlib's object API on the Agg canvas (no pyplot, no GUI,
no global backend switch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from engine.evaluation.dataset import EvaluationResult, MalignancyResult
from engine.evaluation.stages import GroupCounts, StageSummary
from engine.files import atomic_path, write_text_atomic
from engine.metrics.confusion import format_confusion
from engine.metrics.froc import FrocResult
from engine.metrics.roc import RocCurve

REPORT_NAME = "report.json"
FROC_PLOT_NAME = "froc.png"
ROC_PLOT_NAME = "roc.png"
STAGES_PLOT_NAME = "stages.png"


def _num(value: float, digits: int = 3) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def _interval(pair: tuple[float, float] | None) -> str:
    return "" if pair is None else f"[{_num(pair[0])}, {_num(pair[1])}]"


def format_froc(froc: FrocResult) -> str:
    """The FROC table: sensitivity (and interval) per FP rate, then the CPM and the counts."""
    pct = int(round(froc.confidence * 100))
    head = f"{'FP/scan':>9}  {'sensitivity':>11}  {f'{pct}% interval' if froc.cpm_interval else ''}"
    lines = [head.rstrip()]
    intervals = froc.sensitivity_intervals or (None,) * len(froc.fp_rates)
    for rate, sens, ci in zip(froc.fp_rates, froc.sensitivities, intervals):
        lines.append(f"{rate:>9g}  {_num(sens):>11}  {_interval(ci)}".rstrip())
    lines.append(f"{'CPM':>9}  {_num(froc.cpm):>11}  {_interval(froc.cpm_interval)}".rstrip())
    counts = (
        f"{froc.n_scans} scans, {froc.n_nodules} nodules, {froc.n_detected} hit, "
        f"{froc.n_false_positives} false-positive marks, {froc.n_ignored} ignored on excluded findings, "
        f"{froc.n_extra_hits} extra hits on nodules"
    )
    if froc.n_dropped:
        counts += f", {froc.n_dropped} marks over the per-scan cap"
    lines.append(counts)
    if froc.bootstrap_samples:
        lines.append(f"interval: {froc.bootstrap_samples} bootstrap resamples of the scans, seed {froc.seed}")
    return "\n".join(lines)


def format_malignancy(mal: MalignancyResult) -> str:
    """Model AUC vs the diameter baseline, with what they were computed on."""
    if mal.model is None:
        return f"diameter baseline AUC {_num(mal.baseline_all.auc)} on {mal.n_labelled} nodules; no model AUC: {mal.note}"
    where = (
        "crops classified at the annotation centres"
        if mal.source == "annotation"
        else "p_malignant of the best matching detection"
    )
    lines = [
        f"on {mal.n_scored} of {mal.n_labelled} labelled nodules ({mal.model.n_positive} malignant), {where}:",
        f"  model AUC {_num(mal.model.auc)}   diameter baseline AUC {_num(mal.baseline.auc)}",
    ]
    if mal.n_scored != mal.n_labelled:
        lines.append(f"  diameter baseline on all {mal.n_labelled} nodules: AUC {_num(mal.baseline_all.auc)}")
    if mal.note:
        lines.append(f"  note: {mal.note}")
    return "\n".join(lines)


def _fraction(part: int, whole: int) -> str:
    return f"{part}/{whole}" + (f" ({100.0 * part / whole:.1f}%)" if whole else "")


def format_stages(stages: StageSummary) -> str:
    """Where the nodules were lost, and the sensitivity by size, kind and location."""
    t = stages.total
    thr = f"p >= {stages.nodule_threshold:g}"
    lines = [
        f"  segmentation:   {_fraction(t.flagged, t.recorded)} nodules flagged (a voxel above the threshold within the radius)",
        f"  grouping:       {_fraction(stages.flagged_with_candidate, t.flagged)} flagged nodules got a candidate within the radius",
        f"  classification: {_fraction(t.detected, t.with_candidate)} nodules with a candidate have one at {thr}",
        f"  overall:        {_fraction(t.detected, t.n)} nodules detected at {thr}",
    ]
    ranks = sorted(r.rank for r in stages.nodules if r.rank)
    if ranks:
        lines.append(f"  rank of the best candidate on each nodule among its scan's candidates: median {int(np.median(ranks))}, "
                     f"worst {ranks[-1]}")
    for title, groups in (("size", stages.by_size), ("kind", stages.by_kind), ("location", stages.by_location)):
        if groups:
            lines.append(f"  sensitivity by {title} (flagged / candidate / detected of n):")
            lines += [_group_line(name, g) for name, g in groups.items()]
    return "\n".join(lines)


def _group_line(name: str, g: GroupCounts) -> str:
    return f"    {name:<14} {_num(g.sensitivity):>6}   {g.flagged}/{g.with_candidate}/{g.detected} of {g.n}"


def format_report(result: EvaluationResult, per_series: bool = False) -> str:
    """The whole report as text (the book's table, FROC, malignancy, notes)."""
    s = result.settings
    with_mal = result.has_malignancy_model
    lines = [
        f"Evaluated {len(result.series)} series of the {s.split!r} split of {result.data_root} "
        f"({result.n_cached} from the cache); detection time {result.detect_seconds:.1f} s.",
        f"Thresholds: nodule {s.nodule_threshold:g}, malignancy {s.malignancy_threshold:g}.",
        "",
    ]
    if per_series:
        for o in result.series:
            lines += [format_confusion(o.confusion, f"{o.series_uid}  ({o.n_candidates} candidates)", with_mal), ""]
    lines.append(format_confusion(result.confusion, "Total", with_mal))
    c = result.confusion
    found = f"{c.nodules_detected} of {c.n_nodules} nodules found"
    if c.n_nodules:
        found += f" ({100.0 * c.nodules_detected / c.n_nodules:.1f}%)"
    fp = f"{c.false_positives} false positives"
    if c.nodules_detected:
        fp += f" ({c.false_positives / c.nodules_detected:.1f} per found nodule)"
    lines += [f"{found}; {fp}.", "", "LUNA16 FROC (mark probability = p_nodule):", format_froc(result.froc), ""]
    lines += ["Malignancy ROC:", format_malignancy(result.malignancy)]
    if result.stages is not None and result.stages.total.n:
        lines += ["", "Per stage (every candidate, no mark cap):", format_stages(result.stages)]
    if result.notes:
        lines += [""] + [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def _roc_dict(roc: RocCurve | None) -> dict[str, Any] | None:
    return None if roc is None else roc.to_dict(include_curve=True)


def report_dict(result: EvaluationResult) -> dict[str, Any]:
    """Everything of the result as JSON-ready data (NaN as ``null``)."""
    s = result.settings
    mal = result.malignancy
    return {
        "data": str(result.data_root),
        "settings": {
            "split": s.split,
            "val_stride": s.val_stride,
            "test_stride": s.test_stride,
            "nodule_threshold": s.nodule_threshold,
            "malignancy_threshold": s.malignancy_threshold,
            "max_series": s.max_series,
            "max_marks": s.max_marks,
            "bootstrap_samples": s.bootstrap_samples,
            "seed": s.seed,
            "malignancy_at": s.malignancy_at,
        },
        "n_series": len(result.series),
        "n_cached": result.n_cached,
        "detect_seconds": result.detect_seconds,
        "confusion": {
            "total": result.confusion.to_dict(),
            "nodules": result.confusion.n_nodules,
            "nodules_detected": result.confusion.nodules_detected,
            "false_positives": result.confusion.false_positives,
        },
        "froc": result.froc.to_dict(),
        "malignancy": {
            "source": mal.source,
            "n_labelled": mal.n_labelled,
            "n_scored": mal.n_scored,
            "model": _roc_dict(mal.model),
            "baseline_diameter": _roc_dict(mal.baseline),
            "baseline_diameter_all": _roc_dict(mal.baseline_all),
            "note": mal.note,
        },
        "series": [
            {
                "series_uid": o.series_uid,
                "n_candidates": o.n_candidates,
                "seconds": o.seconds,
                "cached": o.cached,
                "confusion": o.confusion.to_dict(),
                "nodules": o.scan.n_nodules,
                "nodules_hit": o.scan.n_detected,
                "false_positive_marks": len(o.scan.fp_probabilities),
            }
            for o in result.series
        ],
        "stages": None if result.stages is None else result.stages.to_dict(),
        "files": {"submission": str(result.submission_csv)},
        "notes": list(result.notes),
    }


def _save_figure(fig: Any, path: Path) -> None:
    with atomic_path(path) as temp:
        fig.savefig(temp, format="png", dpi=110)


def plot_froc(froc: FrocResult, path: str | Path) -> Path:
    """Draw the FROC curve (log FP/scan axis) with the operating points and their intervals."""
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    fps, sens = froc.curve_fps, np.nan_to_num(froc.curve_sensitivity)
    lo_x, hi_x = froc.fp_rates[0] / 2, froc.fp_rates[-1] * 2
    # extend the curve flat to the right edge, as the interpolation does
    x = np.concatenate([np.clip(fps, lo_x, None), [max(hi_x, fps[-1])]])
    y = np.concatenate([sens, [sens[-1]]])
    ax.plot(x, y, color="tab:blue", label="FROC")
    pts = np.nan_to_num(np.asarray(froc.sensitivities))
    if froc.sensitivity_intervals:
        ci = np.asarray(froc.sensitivity_intervals)
        ax.errorbar(froc.fp_rates, pts, yerr=[pts - ci[:, 0], ci[:, 1] - pts], fmt="o", color="tab:red",
                    capsize=3, label=f"operating points, {int(round(froc.confidence * 100))}% interval")
    else:
        ax.plot(froc.fp_rates, pts, "o", color="tab:red", label="operating points")
    ax.set_xscale("log", base=2)
    ax.set_xlim(lo_x, hi_x)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(froc.fp_rates, [f"{r:g}" for r in froc.fp_rates])
    ax.set_xlabel("false positives per scan")
    ax.set_ylabel("sensitivity")
    ax.set_title(f"LUNA16 FROC — CPM {_num(froc.cpm)} ({froc.n_scans} scans, {froc.n_nodules} nodules)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    _save_figure(fig, path)
    return path


def plot_roc(mal: MalignancyResult, path: str | Path) -> Path:
    """Draw the malignancy ROC of the model and the diameter baseline."""
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(5.2, 5.2))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", label="chance")
    if mal.model is not None and mal.model.defined:
        ax.plot(mal.model.fpr, mal.model.tpr, color="tab:blue", label=f"model, AUC {_num(mal.model.auc)}")
        ax.plot(mal.baseline.fpr, mal.baseline.tpr, color="tab:orange", linestyle="--",
                label=f"diameter ≥ t, AUC {_num(mal.baseline.auc)}")
    elif mal.baseline_all.defined:
        ax.plot(mal.baseline_all.fpr, mal.baseline_all.tpr, color="tab:orange", linestyle="--",
                label=f"diameter ≥ t, AUC {_num(mal.baseline_all.auc)}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false-positive rate (benign called malignant)")
    ax.set_ylabel("true-positive rate (malignant found)")
    ax.set_title(f"Malignancy ROC ({mal.n_scored or mal.n_labelled} nodules)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    _save_figure(fig, path)
    return path


def plot_stages(stages: StageSummary, path: str | Path) -> Path:
    """Bar charts: the recall of each stage, and the sensitivity by size, kind and location."""
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(10.0, 4.4))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    names = ["segmentation", "grouping", "classification"]
    values = [stages.segmentation_recall, stages.grouping_recall, stages.classification_recall]
    left.bar(names, np.nan_to_num(values), color=["tab:blue", "tab:orange", "tab:green"])
    for x, v in enumerate(values):
        left.text(x, np.nan_to_num(v) + 0.02, _num(v), ha="center")
    left.set_ylim(0, 1.1)
    left.set_ylabel("recall of the stage")
    left.set_title(f"Where nodules are lost ({stages.total.n} nodules)")
    groups = [(name, g, color) for groups, color in ((stages.by_size, "tab:blue"), (stages.by_kind, "tab:purple"),
                                                    (stages.by_location, "tab:brown"))
              for name, g in groups.items()]
    right.bar([f"{name}\n(n={g.n})" for name, g, _ in groups], [np.nan_to_num(g.sensitivity) for _, g, _ in groups],
              color=[c for _, _, c in groups])
    right.set_ylim(0, 1.05)
    right.set_ylabel(f"sensitivity at p >= {stages.nodule_threshold:g}")
    right.set_title("By size, kind and location")
    right.tick_params(axis="x", labelsize=7, rotation=45)
    for ax in (left, right):
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, path)
    return path


def write_outputs(result: EvaluationResult) -> dict[str, Path]:
    """Write ``report.json``, ``froc.png``, ``roc.png`` and ``stages.png`` into the result's folder.

    Returns:
        ``{"report": ..., "froc_plot": ..., "roc_plot": ..., "stages_plot": ..., "submission": ...}``
        (no ``stages_plot`` when the set has no nodules).
    """
    out = result.out_dir
    files = {
        "report": out / REPORT_NAME,
        "froc_plot": plot_froc(result.froc, out / FROC_PLOT_NAME),
        "roc_plot": plot_roc(result.malignancy, out / ROC_PLOT_NAME),
    }
    if result.stages is not None and result.stages.total.n:
        files["stages_plot"] = plot_stages(result.stages, out / STAGES_PLOT_NAME)
    files["submission"] = result.submission_csv
    data = report_dict(result)
    data["files"] = {k: str(v) for k, v in files.items()}
    write_text_atomic(files["report"], json.dumps(data, indent=1, allow_nan=False))
    return files
