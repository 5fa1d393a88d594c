"""``torchrun --nproc_per_node 2 main.py evaluate``: each rank detects its share, rank 0 reports the whole split."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import main
from engine.evaluation.distributed import Ranks, ranks_from_environment, rank_device, share_of
from tests.engine.test_cli_evaluate import _checkpoints
from tests.engine.test_evaluation import write_dataset

REPO = Path(__file__).resolve().parents[2]


def test_shares_cover_the_split_once() -> None:
    uids = tuple(f"1.{i}" for i in range(7))
    shares = [share_of(uids, Ranks(rank, 3)) for rank in range(3)]
    assert sorted(sum(shares, ())) == sorted(uids)
    assert [len(s) for s in shares] == [3, 2, 2]
    assert share_of(uids, Ranks()) == uids


def test_ranks_and_devices_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert ranks_from_environment() == Ranks() and not Ranks().distributed
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert ranks_from_environment() == Ranks(3, 4, 1)
    assert rank_device("cpu", Ranks(3, 4, 1)) == "cpu"  # CPU ranks share the CPU
    assert rank_device("cuda", Ranks()) == "cuda"


def test_two_cpu_processes_give_the_single_process_report(tmp_path: Path, capsys) -> None:
    data = write_dataset(tmp_path / "luna")  # three series
    ckpt = _checkpoints(tmp_path)
    models = ["--seg", str(ckpt["seg"]), "--cls", str(ckpt["cls"]), "--mal", str(ckpt["mal"])]
    common = ["--data", str(data), "--split", "all", "--bootstrap", "0", "--device", "cpu", *models]
    out = tmp_path / "eval-2"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(REPO / "main.py"), "evaluate", *common, "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 1: 1 series detected" in done.stdout
    assert done.stdout.count("LUNA16 FROC") == 1  # rank 0 alone reports
    assert "(3 from the cache)" in done.stdout  # rank 0 scored every series from the shared cache
    single = tmp_path / "eval-1"
    assert main.main(["evaluate", *common, "--out", str(single)]) == 0
    assert "(0 from the cache)" in capsys.readouterr().out
    assert (out / "submission.csv").read_text() == (single / "submission.csv").read_text()
