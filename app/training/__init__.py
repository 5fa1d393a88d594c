"""The Training panel: launch the engine's trainers as a child process and follow them.

Qt-free: ``request`` (a checked ``TrainRequest`` → CLI arguments), ``lines``
(JSON lines out of stdout chunks), ``record`` (``RunRecord``: one run's state
built from its events), ``run_folders`` (reading run folders on disk: summaries,
tailing ``metrics.jsonl``, finished checkpoints). Qt: ``process`` (the
``QProcess``), ``controller`` (the live run), ``form``, ``view`` and ``panel``.
"""
