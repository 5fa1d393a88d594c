"""``python -m training prepcache``: fill the crop cache of a dataset ahead of training."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DESCRIPTION = "fill the crop cache of a LUNA16-format dataset (classifier crops, segmentation crops and slices)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("--data", required=True, help="LUNA16-format dataset folder")
    parser.add_argument("--kind", choices=("all", "classifier", "segmentation"), default="all", help="which crops (all)")
    parser.add_argument("--num-workers", type=int, default=0, help="worker processes loading series in parallel (0)")
    parser.add_argument("--candidates", help="candidates CSV instead of DATA/candidates.csv")
    parser.add_argument("--candidate-positives", action="store_true",
                        help="also cache the candidates file's class-1 rows inside a nodule (as training does with it)")
    parser.add_argument("--cache-dir", help="cache folder (default: per-user cache folder of the dataset)")


def folder_size(path: Path) -> int:
    """Bytes of all files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def run(args: argparse.Namespace) -> int:
    """Build every missing shard for every series on disk; exit status 0, or 2 on a dataset error."""
    from engine.commands.progress import ProgressBar
    from engine.errors import EngineError
    from engine.luna import LunaIndex
    from training.cache import ShardCache
    from training.prepcache import CACHE_KINDS, CLASSIFIER, default_cache_root, fill_cache, plan_shards

    kinds = CACHE_KINDS if args.kind == "all" else (args.kind,)
    try:
        index = LunaIndex.open(args.data, require_candidates=CLASSIFIER in kinds, candidates=args.candidates,
                               candidate_positives=args.candidate_positives)
        root = Path(args.cache_dir) if args.cache_dir else default_cache_root(Path(args.data))
        cache = ShardCache(root)
        requests = [r for kind in kinds for r in plan_shards(index, kind, index.series_uids)]
        bar = ProgressBar("prepcache ")
        started = time.perf_counter()
        loaded = fill_cache(cache, requests, args.num_workers, lambda done, total, uid: bar(done / total, uid))
        bar.close()
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    print(
        f"{len(index.series_uids)} series, {len(requests)} shards ({', '.join(kinds)}): {loaded} series loaded "
        f"in {elapsed:.1f} s, the rest already cached; cache {root} holds {folder_size(root) / 2**20:.1f} MiB"
    )
    return 0
