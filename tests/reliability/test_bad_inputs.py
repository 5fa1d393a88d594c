"""Generated bad inputs: each gives the project's own error, naming the file and the problem.

CT files and DICOM folders, dataset CSVs and checkpoints come from
:mod:`tests.reliability.bad_inputs`; training options go through
``training.cli.main``; a few go through ``main.py`` in a subprocess (exit 2,
one ``error:`` line, no traceback).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.reliability.bad_inputs import MARKER_NAME, all_cases, check, ct_cases

CASES = all_cases()


def test_there_are_at_least_forty_distinct_bad_inputs() -> None:
    assert len({case.name for case in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gives_the_projects_error(case, tmp_path: Path) -> None:
    outcome = check(case, tmp_path)
    assert outcome.handled, outcome.detail
    assert not (tmp_path / MARKER_NAME).exists()


def test_a_header_far_larger_than_memory_is_refused_before_allocation(tmp_path: Path) -> None:
    import resource

    from engine.errors import CorruptFileError
    from engine.io.ct import load_ct

    case = next(c for c in ct_cases() if c.name == "dimsize-huge-compressed")
    path = case.write(tmp_path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CorruptFileError, match="refused before reading"):
        load_ct(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing like 2 TB was touched


# --- training options ---------------------------------------------------------------
def _train(*argv: str) -> list[str]:
    return ["classifier", "--device", "cpu", "--no-json", *argv]


TRAINING_OPTIONS = {
    "epochs-zero": (["--epochs", "0"], "epochs must be at least 1"),
    "batch-negative": (["--batch-size", "-4"], "batch_size must be at least 1"),
    "epoch-size-zero": (["--epoch-size", "0"], "epoch_size must be at least 1"),
    "lr-nan": (["--lr", "nan"], "lr must be a positive number"),
    "lr-negative": (["--lr", "-1"], "lr must be a positive number"),
    "momentum-one": (["--momentum", "1.5"], "momentum must be in"),
    "threshold-out": (["--threshold", "2"], "threshold must be between 0 and 1"),
    "workers-negative": (["--num-workers", "-1"], "must not be negative"),
    "run-name-up": (["../x"], "cannot be a folder name"),
    "run-name-up-up": (["../../x"], "cannot be a folder name"),
    "run-name-dotdot": ([".."], "cannot be a folder name"),
    "run-name-absolute": (["/tmp/x"], "cannot be a folder name"),
    "run-name-long": (["r" * 300], "cannot be a folder name"),
}


@pytest.mark.parametrize("name", TRAINING_OPTIONS, ids=list(TRAINING_OPTIONS))
def test_training_option_out_of_range_is_refused(name: str, tmp_path: Path, capsys, _isolated_user_data: Path) -> None:
    from training.cli import main

    data = tmp_path / "data"
    data.mkdir()
    argv, words = TRAINING_OPTIONS[name]
    if not argv[0].startswith("-"):
        rc = main(_train("--data", str(data), *argv))
    else:
        rc = main(_train("--data", str(data), "--run-dir", str(tmp_path / "run"), *argv))
    err = capsys.readouterr().err
    assert rc == 2 and "error:" in err and words in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "x").exists()
    assert not any((_isolated_user_data / "runs").glob("*")) if (_isolated_user_data / "runs").exists() else True


def test_a_missing_dataset_is_refused_before_a_run_folder_exists(tmp_path: Path, capsys) -> None:
    from training.cli import main

    rc = main(_train("--data", str(tmp_path / "no-such-data"), "--run-dir", str(tmp_path / "run")))
    err = capsys.readouterr().err
    assert rc == 2 and "no-such-data" in err and "not a dataset folder" in err
    assert not (tmp_path / "run").exists()


def test_python_m_training_refuses_a_run_name_with_dots(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "training", "classifier", "--data", str(tmp_path / "data"), "../../escape"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2 and "cannot be a folder name" in done.stderr and "Traceback" not in done.stderr


# --- through the command line ---------------------------------------------------------
CLI_CASES = ["dimsize-huge", "datafile-outside", "raw-truncated", "ndims-4", "dicom-duplicated-slices"]


def test_main_analyze_bad_inputs_exit_2_with_one_error_line(tmp_path: Path) -> None:
    cases = {c.name: c for c in ct_cases()}
    for name in CLI_CASES:
        folder = tmp_path / name
        folder.mkdir()
        path = cases[name].write(folder)
        done = subprocess.run(
            [sys.executable, "main.py", "analyze", str(path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
        )
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode == 2, (name, done.stderr)
        assert len(errors) == 1 and path.name in errors[0], (name, done.stderr)
        assert "Traceback" not in done.stderr, (name, done.stderr)
