"""``python main.py serve``: the detection server (loopback, bearer token, dynamic batching)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.choices import DEVICE_CHOICES

DESCRIPTION = "run the detection server: classify crops and detect on uploaded CTs over HTTP (bearer token)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this computer only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host other computers can reach (no TLS: use a TLS proxy or a private network)")
    parser.add_argument("--token-file", default=None,
                        help="file holding the bearer token (default: created in the user data folder, mode 0600)")
    parser.add_argument("--max-batch", type=int, default=32, help="most crops per classifier call (default 32)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0,
                        help="longest a classify request waits for others to join its batch (default 10)")
    parser.add_argument("--max-queue", type=int, default=256, help="classify requests waiting before 503 (default 256)")
    parser.add_argument("--max-upload-mb", type=float, default=1024.0, help="largest CT upload in MiB (default 1024)")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="where the models run (default auto)")
    parser.add_argument("--seg", default=None, help="segmentation checkpoint (default: the demo weights)")
    parser.add_argument("--cls", default=None, help="nodule classifier checkpoint (default: the demo weights)")
    parser.add_argument("--mal", default=None, help="malignancy classifier checkpoint (default: the demo weights)")


def settings_from_args(args: argparse.Namespace):
    """The :class:`~engine.serve.service.ServerSettings` of the options."""
    from engine.serve.service import ServerSettings

    if args.max_batch < 1 or args.max_queue < 1 or args.max_wait_ms < 0 or args.max_upload_mb <= 0:
        from engine.deploy.errors import ServeError

        raise ServeError("--max-batch and --max-queue must be at least 1, --max-wait-ms ≥ 0, --max-upload-mb > 0")
    return ServerSettings(
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
        max_upload=int(args.max_upload_mb * (1 << 20)),
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from engine.detection import Detector
    from engine.serve.app import create_app
    from engine.serve.auth import check_host, load_or_create_token

    check_host(args.host, args.allow_remote)
    settings = settings_from_args(args)
    token, token_path, created = load_or_create_token(Path(args.token_file) if args.token_file else None)
    print(f"bearer token {'created in' if created else 'read from'} {token_path} (send it as 'Authorization: Bearer <token>')")
    paths = {"segmentation": args.seg, "classifier": args.cls, "malignancy": args.mal}

    def load_detector():
        return Detector.from_checkpoints(paths["segmentation"], paths["classifier"], paths["malignancy"], device=args.device)

    app = create_app(load_detector, token, settings)
    print(f"serving on http://{args.host}:{args.port} (GET /health, /ready, /metrics; /v1/models, "
          "POST /v1/classify, /v1/detect); Ctrl+C or SIGTERM stops after the requests in flight", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=60)
    return 0
