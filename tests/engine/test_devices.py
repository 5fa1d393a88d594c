"""Device resolution, precision policy and the batch runner's out-of-memory handling."""

from __future__ import annotations

import pytest
import torch

from engine.detection.runtime import StageOutOfMemory, StageReporter, run_in_batches, tensor_view
from engine.devices import cpu_threads, is_out_of_memory, precision_policy, resolve_device
from engine.errors import CancelledError, DeviceError


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_precision_policy():
    cpu = torch.device("cpu")
    assert precision_policy(cpu).name == "float32"
    assert precision_policy(cpu, "bfloat16").name in ("bfloat16", "float32")
    assert precision_policy(torch.device("cuda")).name == "float16"
    assert precision_policy(torch.device("cuda"), "float32").autocast_dtype is None
    with pytest.raises(DeviceError, match="needs a GPU"):
        precision_policy(cpu, "float16")
    with pytest.raises(DeviceError, match="unknown precision"):
        precision_policy(cpu, "int8")


def test_is_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_cpu_threads_restores_the_setting():
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def _reporter(cancelled=None, reports=None) -> StageReporter:
    progress = None if reports is None else (lambda f, t: reports.append((f, t)))
    return StageReporter(progress, cancelled, 0.2, 0.6, "stage")


def test_batches_halve_on_out_of_memory_and_cover_every_item():
    done = []

    def step(start: int, stop: int) -> None:
        if stop - start > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        done.extend(range(start, stop))

    notes: list[str] = []
    reports: list[tuple[float, str]] = []
    size = run_in_batches(10, 16, step, device=torch.device("cpu"), reporter=_reporter(reports=reports), notes=notes)
    assert size == 2 and done == list(range(10))
    assert notes == [
        "stage: out of memory on cpu with batches of 16; retried with 8",
        "stage: out of memory on cpu with batches of 8; retried with 4",
        "stage: out of memory on cpu with batches of 4; retried with 2",
    ]
    assert reports[0][0] == pytest.approx(0.2) and reports[-1][0] == pytest.approx(0.6)


def test_one_item_that_does_not_fit_raises_stage_out_of_memory():
    def step(start: int, stop: int) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(StageOutOfMemory, match="even with a batch of 1"):
        run_in_batches(3, 4, step, device=torch.device("cpu"), reporter=_reporter(), notes=[])


def test_other_errors_pass_through_and_cancel_stops():
    def broken(start: int, stop: int) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        run_in_batches(3, 2, broken, device=torch.device("cpu"), reporter=_reporter(), notes=[])
    seen = []
    polls = iter([False, False, True])
    with pytest.raises(CancelledError):
        run_in_batches(10, 2, lambda a, b: seen.append(a), device=torch.device("cpu"),
                       reporter=_reporter(cancelled=lambda: next(polls)), notes=[])
    assert seen == [0, 2]


def test_tensor_view_shares_read_only_memory_without_warning(recwarn):
    import numpy as np

    array = np.arange(6, dtype=np.int16)
    array.flags.writeable = False
    tensor = tensor_view(array)
    assert tensor.data_ptr() == array.ctypes.data
    assert not [w for w in recwarn if "not writable" in str(w.message)]


# --- streams: batches on several CPU worker threads -----------------------------------


def _recording_step(calls, threads_seen, delay=0.002):
    import threading
    import time

    lock = threading.Lock()

    def step(start: int, stop: int) -> None:
        time.sleep(delay)  # lets the other worker take a batch meanwhile
        with lock:
            calls.append((start, stop))
            threads_seen.add((threading.current_thread().name, torch.get_num_threads()))

    return step


def test_streams_run_each_batch_once_on_workers_with_one_thread_each():
    calls, seen = [], set()
    reports: list[tuple[float, str]] = []
    before = torch.get_num_threads()
    size = run_in_batches(
        23, 4, _recording_step(calls, seen), device=torch.device("cpu"),
        reporter=_reporter(reports=reports), notes=[], streams=2,
    )
    assert size == 4
    assert sorted(calls) == [(s, min(23, s + 4)) for s in range(0, 23, 4)]  # the sequential batches, once each
    assert {name for name, _ in seen} <= {"stage-stream-0", "stage-stream-1"} and len(seen) >= 1
    assert {threads for _, threads in seen} == {1}
    assert torch.get_num_threads() == before  # restored after the stage
    assert reports[0][0] == pytest.approx(0.2) and reports[-1] == (pytest.approx(0.6), "stage 23/23 items")
    assert [f for f, _ in reports] == sorted(f for f, _ in reports)  # progress never goes back


def test_streams_are_sequential_off_the_cpu_and_for_one_batch():
    import threading

    for device, n in ((torch.device("cuda"), 10), (torch.device("cpu"), 3)):
        names = []
        run_in_batches(n, 4, lambda a, b: names.append(threading.current_thread().name), device=device,
                       reporter=_reporter(), notes=[], streams=2)
        assert set(names) == {threading.current_thread().name}


def test_streams_pass_errors_through_and_stop_taking_batches():
    calls = []

    def step(start: int, stop: int) -> None:
        calls.append(start)
        if start == 8:
            raise ValueError("bad crop")

    with pytest.raises(ValueError, match="bad crop"):
        run_in_batches(400, 4, step, device=torch.device("cpu"), reporter=_reporter(), notes=[], streams=2)
    assert len(calls) < 100  # stopped soon after the failure, not run to the end


def test_streams_fall_back_to_one_stream_with_halving_on_out_of_memory():
    import threading

    lock = threading.Lock()
    done = []

    def step(start: int, stop: int) -> None:
        if stop - start > 2:
            raise torch.OutOfMemoryError("can't allocate memory (simulated)")
        with lock:
            done.extend(range(start, stop))

    notes: list[str] = []
    size = run_in_batches(12, 4, step, device=torch.device("cpu"), reporter=_reporter(), notes=notes, streams=2)
    assert size == 2 and sorted(done) == list(range(12))
    assert notes[0] == "stage: out of memory on cpu with 2 streams; the rest runs in one stream"
    assert "retried with 2" in notes[1]


def test_streams_cancel_between_batches():
    calls, seen = [], set()
    polls = iter([False] * 3 + [True] * 1000)
    with pytest.raises(CancelledError):
        run_in_batches(2000, 1, _recording_step(calls, seen, delay=0.01), device=torch.device("cpu"),
                       reporter=_reporter(cancelled=lambda: next(polls)), notes=[], streams=2)
    assert 0 < len(calls) < 100


def test_streams_run_under_the_callers_grad_and_inference_modes():
    modes = set()

    def step(start: int, stop: int) -> None:
        modes.add((torch.is_inference_mode_enabled(), torch.is_grad_enabled()))

    with torch.inference_mode():
        run_in_batches(8, 2, step, device=torch.device("cpu"), reporter=_reporter(), notes=[], streams=2)
    assert modes == {(True, False)}
    modes.clear()
    run_in_batches(8, 2, step, device=torch.device("cpu"), reporter=_reporter(), notes=[], streams=2)
    assert modes == {(False, True)}


def test_streams_poll_cancellation_before_each_batch():
    import threading

    polls = []
    lock = threading.Lock()

    def cancelled() -> bool:
        with lock:
            polls.append(threading.current_thread().name)
        return False

    run_in_batches(12, 2, lambda a, b: None, device=torch.device("cpu"), reporter=_reporter(cancelled=cancelled),
                   notes=[], streams=2)
    assert sum(name.startswith("stage-stream-") for name in polls) >= 6  # one before each of the 6 batches


def test_streams_stop_when_the_progress_callback_fails():
    import time

    calls = []

    def progress(fraction: float, text: str) -> None:
        if fraction > 0.2:
            raise KeyError("viewer closed")

    reporter = StageReporter(progress, None, 0.2, 0.6, "stage")
    with pytest.raises(KeyError):
        run_in_batches(2000, 1, lambda a, b: (time.sleep(0.001), calls.append(a)), device=torch.device("cpu"),
                       reporter=reporter, notes=[], streams=2)
    count = len(calls)
    time.sleep(0.05)
    assert len(calls) == count < 2000  # the workers were stopped and joined before the error came out
