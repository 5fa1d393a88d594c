"""Deployment: exported models (ONNX, TorchScript, torch.export), ONNX Runtime wrappers, int8, benchmarks.

* :mod:`engine.deploy.bundle` — ``export_models(ExportRequest)``: the three
  models exported, checked against eager and published with a manifest.
* :mod:`engine.deploy.export` — one model in one format, and the equivalence check.
* :mod:`engine.deploy.onnx_runtime` — ``load_onnx_model(path)`` → an
  :class:`OnnxClassifier` or :class:`OnnxSegmentation` called like the torch model.
* :mod:`engine.deploy.quantize` — int8 static quantization with phantom calibration crops.
* :mod:`engine.deploy.bench` — torch vs ONNX Runtime latency per model.
* :mod:`engine.deploy.manifest` — ``manifest.json`` read/write, file hashes.

Heavy imports stay in the submodules, so importing this package is cheap.
"""

from __future__ import annotations
