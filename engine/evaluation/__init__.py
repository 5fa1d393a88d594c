"""Evaluating a detector on a LUNA16-format dataset (SPEC §5).

``dataset`` runs the detector over a split and scores it (``evaluate_dataset``,
resumable); ``cache`` keeps one file of detections per series so an
interrupted evaluation resumes; ``report`` prints the result and writes
``report.json`` and the FROC/ROC plots.
"""
