"""int8 static quantization of the classifier and malignancy ONNX models, measured honestly.

Calibration uses real crops from phantom series (every nodule and evenly
chosen non-nodule candidates, :func:`engine.deploy.samples.phantom_crops`);
the comparison with float32 uses crops from *other* phantom seeds. Recorded
per model: file sizes, CPU latency of both at batch 8, decision agreement at
p = 0.5, the probability differences, and the ROC AUC of both against the
phantom truth (nodule vs not; malignant vs the rest). ``recommended`` is true
only when int8 is faster *and* agrees; the ``verdict`` says it in words.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from engine.deploy.manifest import file_sha256
from engine.deploy.onnx_runtime import OnnxClassifier
from engine.deploy.samples import CropSet, phantom_crops
from engine.metrics.roc import roc_curve

#: Phantom seeds of the calibration crops and of the held-out comparison crops.
CALIBRATION_SEEDS = (101, 102)
HELD_OUT_SEEDS = (201, 202)
#: int8 is recommended only with at least this speed-up and decision agreement, and this AUC loss at most.
MIN_SPEEDUP, MIN_AGREEMENT, MAX_AUC_LOSS = 1.1, 0.98, 0.02


class _CropReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over a crop array, in batches."""

    def __init__(self, input_name: str, crops: np.ndarray, batch: int = 8) -> None:
        self._all = [{input_name: crops[i : i + batch]} for i in range(0, len(crops), batch)]
        self._batches = iter(self._all)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:
        """Start again from the first batch (calibrators that read the data twice call it)."""
        self._batches = iter(self._all)


def quantize_onnx(float_path: Path, int8_path: Path, calibration: np.ndarray) -> None:
    """Write a statically quantized (QDQ, per-channel int8 weights, uint8 activations) copy of an ONNX model.

    Args:
        float_path: The float32 ONNX file (from the exporter; its metadata is kept).
        int8_path: Destination.
        calibration: float32 crops ``(N, 1, 32, 48, 48)`` the activation ranges are taken from.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = int8_path.with_suffix(".prep.onnx")
    try:
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        input_name = OnnxClassifier(float_path).input_name
        quantize_static(
            str(prepared), str(int8_path), _CropReader(input_name, calibration),
            quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8, calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        prepared.unlink(missing_ok=True)
    _copy_metadata(float_path, int8_path)


def _copy_metadata(source: Path, target: Path) -> None:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    model = onnx.load(str(target))
    del model.metadata_props[:]
    for key, value in {**meta, "lungcad_precision": "int8"}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save_model(model, str(target))


def latency_ms(predict: Callable[[np.ndarray], Any], batch: np.ndarray, repeats: int = 5) -> float:
    """Median wall time of ``predict(batch)`` in ms, after one warm-up call."""
    predict(batch)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        predict(batch)
        times.append((time.perf_counter() - began) * 1000.0)
    return float(np.median(times))


def compare_int8(float_path: Path, int8_path: Path, held_out: CropSet, labels: np.ndarray) -> dict[str, Any]:
    """Sizes, speed and agreement of an int8 model with its float32 original (see the module docstring)."""
    float_model, int8_model = OnnxClassifier(float_path), OnnxClassifier(int8_path)
    p_float = float_model.positive_probability(held_out.crops)
    p_int8 = int8_model.positive_probability(held_out.crops)
    batch = held_out.crops[:8]
    float_ms = latency_ms(float_model.positive_probability, batch)
    int8_ms = latency_ms(int8_model.positive_probability, batch)
    auc_float = roc_curve(labels, p_float).auc
    auc_int8 = roc_curve(labels, p_int8).auc
    agreement = float(np.mean((p_float >= 0.5) == (p_int8 >= 0.5)))
    speedup = float_ms / int8_ms if int8_ms > 0 else float("nan")
    auc_loss = auc_float - auc_int8 if np.isfinite(auc_float) and np.isfinite(auc_int8) else float("nan")
    recommended = bool(speedup >= MIN_SPEEDUP and agreement >= MIN_AGREEMENT and not auc_loss > MAX_AUC_LOSS)
    return {
        "bytes_float32": float_path.stat().st_size,
        "bytes_int8": int8_path.stat().st_size,
        "latency_ms_batch8_float32": round(float_ms, 3),
        "latency_ms_batch8_int8": round(int8_ms, 3),
        "speedup": round(speedup, 3),
        "decision_agreement": agreement,
        "max_abs_dp": float(np.max(np.abs(p_float - p_int8))) if p_float.size else 0.0,
        "mean_abs_dp": float(np.mean(np.abs(p_float - p_int8))) if p_float.size else 0.0,
        "auc_float32": auc_float,
        "auc_int8": auc_int8,
        "held_out": {"seeds": list(held_out.seeds), "crops": len(held_out), "positives": int(labels.sum())},
        "recommended": recommended,
        "verdict": _verdict(speedup, agreement, auc_float, auc_int8, recommended),
    }


def _verdict(speedup: float, agreement: float, auc_float: float, auc_int8: float, recommended: bool) -> str:
    speed = f"{speedup:.2f}× the float32 speed at batch 8 on this CPU" + ("" if speedup >= MIN_SPEEDUP else " (not faster)")
    agree = f"decisions at p=0.5 agree on {agreement:.1%} of held-out crops"
    auc = f"AUC {auc_int8:.3f} vs {auc_float:.3f} float32"
    advice = "usable as an option" if recommended else "not recommended: keep float32"
    return f"int8 runs at {speed}; {agree}; {auc}; {advice}"


def quantize_classifiers(
    models: dict[str, dict[str, Any]],
    folder: Path,
    log: Callable[[str], None] = print,
    calibration_seeds: Sequence[int] = CALIBRATION_SEEDS,
    held_out_seeds: Sequence[int] = HELD_OUT_SEEDS,
) -> None:
    """Quantize the classifier and malignancy ONNX files in ``folder``; add an ``int8`` entry to each manifest model.

    Args:
        models: The manifest's ``models`` dict (entries with an ``onnx`` file are quantized).
        folder: The (staging) export folder.
        log: Receives one summary line per model.
        calibration_seeds: Phantom seeds of the calibration crops.
        held_out_seeds: Phantom seeds of the comparison crops.
    """
    kinds = [k for k in ("classifier", "malignancy") if k in models and "onnx" in models[k]["files"]]
    if not kinds:
        return
    calibration = phantom_crops(calibration_seeds)
    held_out = phantom_crops(held_out_seeds, nodules_per_series=8)
    for kind in kinds:
        float_path = folder / models[kind]["files"]["onnx"]["file"]
        int8_path = folder / f"{kind}.int8.onnx"
        quantize_onnx(float_path, int8_path, calibration.crops)
        labels = held_out.is_nodule if kind == "classifier" else held_out.is_malignant
        report = compare_int8(float_path, int8_path, held_out, labels)
        models[kind]["int8"] = {
            "format": "onnx-int8",
            "file": int8_path.name,
            "sha256": file_sha256(int8_path),
            "bytes": int8_path.stat().st_size,
            "method": "onnxruntime quantize_static: QDQ, per-channel int8 weights, uint8 activations, MinMax",
            "calibration": {"seeds": list(calibration.seeds), "crops": len(calibration),
                            "positives": int(calibration.is_nodule.sum())},
            **report,
        }
        log(f"{kind:12} int8        {report['verdict']}")
