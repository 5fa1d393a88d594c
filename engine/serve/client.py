"""Detect on a detection server (``python main.py serve``) as if it were a local detector.

:class:`RemoteDetector` has the methods the viewer's detect worker calls on
:class:`engine.detection.Detector` — ``detect(ct, progress, cancelled)`` and
``regroup(result, ct, grouping, progress, cancelled)`` — and returns the same
:class:`~engine.detection.result.DetectionResult`:

* ``detect`` writes the CT to a temporary ``.mha`` (SimpleITK; exact voxels and
  geometry), uploads it in chunks to ``POST /v1/detect?include=probability``
  with the standard library's ``urllib.request`` (cancel is checked between
  chunks and while the server works; progress is the upload fraction, then
  "detecting on server"), and reads the whole result back from the ``.npz``
  answer (:mod:`engine.serve.result_codec`, no pickles).
* ``regroup`` groups the stored probability levels here (cheap, no
  segmentation) and classifies only the new candidates' crops through
  ``POST /v1/classify``, in batches.

Connection refused, a wrong token (401), a busy server (503), a timeout and
other refusals become :class:`~engine.deploy.errors.RemoteDetectorError`
subclasses whose messages name the server's URL, never the token.

Importing this module, and ``detect``, need neither Qt nor torch; ``regroup``
imports the engine's grouping and crop code (which use torch) when called.
"""

from __future__ import annotations

import http.client
import json
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from engine.deploy.errors import (
    RemoteDetectorError,
    ServerAuthError,
    ServerBusyError,
    ServerResponseError,
    ServerTimeoutError,
    ServerUnreachableError,
)
from engine.detection.result import DetectionResult
from engine.detection.settings import GroupingSettings
from engine.errors import CancelledError
from engine.io.volume import CtVolume
from engine.serve.result_codec import ResultFormatError, decode_result

Progress = Callable[..., None]
Cancelled = Callable[[], bool]

#: Default seconds to wait for the server on any one network step (a detection included).
DEFAULT_TIMEOUT_S = 600.0
#: Upload chunk size: cancel is checked between chunks.
UPLOAD_CHUNK = 1 << 20
#: Crops per ``/v1/classify`` request during a re-group.
CLASSIFY_BATCH = 128
#: How often the caller's thread polls for cancel and reports progress while a request runs.
POLL_S = 0.05
#: Progress fractions of a remote detect: the upload starts and ends here, the answer starts arriving here.
_WRITTEN, _UPLOADED, _ANSWERED = 0.02, 0.5, 0.95


def write_mha(ct: CtVolume, path: str | Path) -> Path:
    """Write ``ct`` as an uncompressed MetaImage ``.mha`` (HU int16, origin, spacing, direction exact)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(ct.hu))
    image.SetOrigin(ct.geometry.origin_xyz)
    image.SetSpacing(ct.geometry.spacing_xyz)
    image.SetDirection(ct.geometry.direction)
    sitk.WriteImage(image, str(path), useCompression=False)
    return Path(path)


class RemoteDetector:
    """A detection server used like :class:`engine.detection.Detector` (detect and regroup).

    Args:
        url: The server, e.g. ``http://127.0.0.1:8000`` (``http`` or ``https``).
        token: Its bearer token (sent as ``Authorization: Bearer``; never in messages).
        timeout: Seconds to wait on any one network step; a detection must finish within it.
        grouping: Grouping settings of ``detect`` (None: the server's default).

    Raises:
        RemoteDetectorError: the URL is not an http(s) URL.
    """

    def __init__(
        self, url: str, token: str, timeout: float = DEFAULT_TIMEOUT_S, grouping: GroupingSettings | None = None
    ) -> None:
        parsed = urllib.parse.urlsplit(url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise RemoteDetectorError(f"the server URL must look like http://host:port, got {url!r}")
        self.url = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))
        self._token = token.strip()
        self.timeout = float(timeout)
        self.grouping = grouping
        self._info: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"RemoteDetector({self.url!r})"  # never the token

    # --- what the server runs ---------------------------------------------------------------
    def info(self, refresh: bool = False) -> dict[str, Any]:
        """``GET /v1/models`` (cached): ``{"models": [{kind, model_id, sha256, demo}], "device": ...}``.

        Raises:
            RemoteDetectorError: unreachable, wrong token, not ready (503), ...
        """
        if self._info is None or refresh:
            self._info = json.loads(self._call("GET", "/v1/models").decode("utf-8"))
        return self._info

    def connect(self) -> RemoteDetector:
        """Check the server is reachable, ready and accepts the token (``/v1/models``); returns self."""
        self.info(refresh=True)
        return self

    @property
    def model_ids(self) -> dict[str, str]:
        """``{kind: model_id}`` of the server's models."""
        return {m["kind"]: m["model_id"] for m in self.info()["models"]}

    @property
    def size_head(self) -> tuple[float, float, float] | None:
        """The server's malignancy size head ``(a, b, c)`` (:mod:`engine.lesion_size`), or None."""
        for m in self.info()["models"]:
            if m["kind"] == "malignancy" and m.get("size_head") is not None:
                a, b, c = (float(v) for v in m["size_head"])
                return a, b, c
        return None

    @property
    def shape_head(self) -> tuple[float, ...] | None:
        """The server's nodule classifier's shape head (:mod:`engine.lesion_shape`), or None."""
        for m in self.info()["models"]:
            if m["kind"] == "classifier" and m.get("shape_head") is not None:
                return tuple(float(v) for v in m["shape_head"])
        return None

    @property
    def device(self) -> str:
        """Where the models run, e.g. ``"cpu (server http://127.0.0.1:8000)"``."""
        return f"{self.info().get('device', '?')} (server {self.url})"

    @property
    def demo(self) -> bool:
        """True when any of the server's models is the shipped demo weights (results carry the demo note)."""
        return any(bool(m.get("demo")) for m in self.info()["models"])

    # --- detect -----------------------------------------------------------------------------
    def detect(self, ct: CtVolume, progress: Progress | None = None, cancelled: Cancelled | None = None) -> DetectionResult:
        """Detect on the server; the same result a local detector with the server's models gives.

        Args:
            ct: The CT (int16 HU, index/row/col).
            progress: Called as ``progress(fraction, stage_text)``.
            cancelled: Polled between upload chunks (on a helper thread: make it
                thread-safe) and while the server works.

        Returns:
            The result, with this CT's series uid and the server named in ``device``.

        Raises:
            CancelledError: ``cancelled()`` returned True (the server may still finish its run).
            RemoteDetectorError: the server could not be used (see the module docstring).
        """
        report = progress or _no_progress
        report(0.0, f"connecting to {self.url}")
        self.info(refresh=True)  # ready, and the token accepted, before uploading a whole CT
        query = {} if self.grouping is None else self.grouping.as_dict()
        query["include"] = "probability"
        with tempfile.TemporaryDirectory(prefix="lungcad-remote-", ignore_cleanup_errors=True) as folder:
            report(0.0, "writing the CT for upload")
            path = write_mha(ct, Path(folder) / "ct.mha")
            size = path.stat().st_size
            report(_WRITTEN, f"uploading {size / (1 << 20):.1f} MiB to {self.url}")
            call = _Call(lambda abort, moved: self._call(
                "POST", "/v1/detect?" + urllib.parse.urlencode(query), _chunks(path, abort, moved, cancelled), size,
                "application/octet-stream", moved,
            ))

            def step(moved: _Counter) -> None:
                if moved.uploaded < size:
                    fraction = _WRITTEN + (_UPLOADED - _WRITTEN) * moved.uploaded / size
                    report(fraction, f"uploading {size / (1 << 20):.1f} MiB to {self.url}")
                elif moved.downloaded == 0:
                    report(_UPLOADED, f"detecting on server {self.url}")
                else:
                    report(_ANSWERED, "receiving the result")

            data = call.wait(cancelled, step)
        try:
            result, _document = decode_result(data)
        except ResultFormatError as exc:
            raise ServerResponseError(f"the server at {self.url} sent an unreadable result: {exc}") from None
        if tuple(result.shape) != ct.shape:
            raise ServerResponseError(f"the server at {self.url} returned a result for a {result.shape} volume, not {ct.shape}")
        report(1.0, "done")
        return replace(
            result,
            series_uid=ct.series_uid,
            device=f"{result.device} (server {self.url})",
            messages=(*result.messages, f"detected on the server {self.url}"),
        )

    # --- regroup ----------------------------------------------------------------------------
    def regroup(
        self,
        result: DetectionResult,
        ct: CtVolume,
        grouping: GroupingSettings,
        progress: Progress | None = None,
        cancelled: Cancelled | None = None,
    ) -> DetectionResult:
        """Candidates of ``result`` grouped with other settings: grouped here, new crops classified on the server.

        Candidates whose crop is one of ``result``'s keep their probabilities
        (as :meth:`engine.detection.Detector.regroup` does).

        Raises:
            ValueError: a result of another volume.
            TypeError: ``grouping`` is not a :class:`GroupingSettings`.
            CancelledError: ``cancelled()`` returned True between classify batches.
            RemoteDetectorError: the server could not be used.
        """
        from engine.crops import CLASSIFIER_CROP, crop_starts, gather_crops
        from engine.detection.grouping import carried_probabilities, group_components, make_candidates
        from engine.lesion_shape import shape_aware_at
        from engine.lesion_size import size_aware_at

        if tuple(result.shape) != ct.shape:
            raise ValueError(f"the result is for a {result.shape} volume, the CT is {ct.shape}")
        if not isinstance(grouping, GroupingSettings):
            raise TypeError(f"grouping must be a GroupingSettings, got {type(grouping).__name__}")
        report = progress or _no_progress
        began = time.perf_counter()
        report(0.0, "grouping")
        components = group_components(result.seg_probability, ct.hu, grouping, ct.geometry.spacing_irc)
        grouped = time.perf_counter()
        starts = crop_starts(components.centers_irc, CLASSIFIER_CROP, ct.shape)
        shape_head = self.shape_head
        counts = components.voxel_counts if shape_head is not None else None
        p_nodule, p_malignant = carried_probabilities(result, starts, CLASSIFIER_CROP, counts)
        todo = np.flatnonzero(np.isnan(p_nodule))
        for first in range(0, todo.size, CLASSIFY_BATCH):
            if cancelled is not None and cancelled():
                raise CancelledError()
            report(0.15 + 0.85 * first / todo.size, f"classifying {todo.size} new candidates on server {self.url}")
            rows = todo[first:first + CLASSIFY_BATCH]
            centers = components.centers_irc[rows]
            crops = gather_crops(ct.hu, centers, CLASSIFIER_CROP).astype(np.float32)
            p_nodule[rows], p_malignant[rows] = self.classify_crops(crops)
            # the heads measured here, at each candidate's own centre and region, as a local detection does
            spacing = ct.geometry.spacing_irc
            p_nodule[rows] = shape_aware_at(shape_head, p_nodule[rows], ct.hu, spacing, centers, components.voxel_counts[rows])
            p_malignant[rows] = size_aware_at(self.size_head, p_malignant[rows], ct.hu, spacing, centers)
        candidates = make_candidates(components, ct.geometry, p_nodule, p_malignant)
        done = time.perf_counter()
        report(1.0, "done")
        return replace(
            result,
            candidates=candidates,
            grouping=grouping,
            timings={"grouping": grouped - began, "classification": done - grouped, "total": done - began},
            messages=(f"re-grouped here; {todo.size} new candidate(s) classified on the server {self.url}",),
        )

    def classify_crops(
        self, crops: np.ndarray, spacing_irc: tuple[float, float, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(p_nodule, p_malignant)`` float64 ``(N,)`` of HU crops ``(N, 32, 48, 48)`` (``POST /v1/classify``).

        With the crops' voxel spacing (mm, index/row/col) a malignancy model with a
        size head applies it, measuring each lesion at its crop's centre; without,
        its CNN alone answers (:meth:`regroup` applies the head here, at each
        candidate's own centre, which an edge-shifted crop does not have in its middle).
        """
        body = np.ascontiguousarray(crops, dtype="<f4").tobytes()
        path = "/v1/classify"
        if spacing_irc is not None:
            path += "?spacing=" + ",".join(repr(float(v)) for v in spacing_irc)
        answer = json.loads(self._call("POST", path, body, len(body), "application/octet-stream").decode("utf-8"))
        p_nodule = np.asarray(answer["p_nodule"], dtype=np.float64)
        p_malignant = np.asarray(answer["p_malignant"], dtype=np.float64)
        if p_nodule.shape != (len(crops),) or p_malignant.shape != (len(crops),):
            raise ServerResponseError(f"the server at {self.url} classified {p_nodule.size} crops, not {len(crops)}")
        return p_nodule, p_malignant

    # --- HTTP -------------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        body: bytes | Iterator[bytes] | None = None,
        length: int | None = None,
        content_type: str | None = None,
        moved: _Counter | None = None,
    ) -> bytes:
        """One request; the answer's body, or a :class:`RemoteDetectorError` naming the URL."""
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json, application/octet-stream"}
        if content_type:
            headers["Content-Type"] = content_type
        if length is not None:
            headers["Content-Length"] = str(length)
        request = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)
        where = f"the detection server at {self.url}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                parts = []
                while block := response.read(UPLOAD_CHUNK):
                    parts.append(block)
                    if moved is not None:
                        moved.downloaded += len(block)
                return b"".join(parts)
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, where) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise ServerTimeoutError(f"{where} did not answer within {self.timeout:g} s") from None
            if isinstance(reason, ConnectionRefusedError):
                raise ServerUnreachableError(
                    f"cannot reach {where}: connection refused (is `python main.py serve` running there?)"
                ) from None
            if isinstance(reason, (BrokenPipeError, ConnectionResetError)):
                raise ServerUnreachableError(
                    f"{where} closed the connection during the upload (is the CT over its size limit, "
                    "or did the server restart?)"
                ) from None
            raise ServerUnreachableError(f"cannot reach {where}: {reason}") from None
        except (TimeoutError, socket.timeout):
            raise ServerTimeoutError(f"{where} did not answer within {self.timeout:g} s") from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise ServerUnreachableError(f"{where} closed the connection: {type(exc).__name__}: {exc}") from None


def _http_error(exc: urllib.error.HTTPError, where: str) -> RemoteDetectorError:
    try:
        message = json.loads(exc.read().decode("utf-8")).get("error", "")
    except (ValueError, AttributeError, OSError):
        message = ""
    detail = f": {message}" if message else ""
    if exc.code == 401:
        return ServerAuthError(f"{where} refused the token (401): check the token file in Detect on ▸ Server")
    if exc.code == 503:
        retry = exc.headers.get("Retry-After") if exc.headers else None
        return ServerBusyError(f"{where} is busy or still loading its models (503){detail}" + (f"; retry in {retry} s" if retry else ""))
    return ServerResponseError(f"{where} refused the request ({exc.code}){detail}")


def _no_progress(fraction: float, stage: str = "") -> None:
    """The progress callback when the caller gives none."""


class _Counter:
    """Bytes sent and received so far by a request running on a helper thread."""

    def __init__(self) -> None:
        self.uploaded = 0
        self.downloaded = 0


def _chunks(path: Path, abort: threading.Event, moved: _Counter, cancelled: Cancelled | None) -> Iterator[bytes]:
    """The file in :data:`UPLOAD_CHUNK` pieces; stops (raises) before the next chunk once aborted or cancelled.

    Runs on the request's helper thread, so ``cancelled`` must be thread-safe
    (the viewer's is a ``threading.Event`` test).
    """
    with open(path, "rb") as stream:
        while block := stream.read(UPLOAD_CHUNK):
            if abort.is_set() or (cancelled is not None and cancelled()):
                raise CancelledError()
            yield block
            moved.uploaded += len(block)


class _Call:
    """Runs a request on a helper thread so that the caller's thread can poll cancel and report progress.

    Args:
        work: ``work(abort, counter)`` doing the request and returning its body.
    """

    def __init__(self, work: Callable[[threading.Event, _Counter], bytes]) -> None:
        self.abort = threading.Event()
        self.moved = _Counter()
        self._done = threading.Event()
        self._value: bytes = b""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), name="remote-detect", daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[threading.Event, _Counter], bytes]) -> None:
        try:
            self._value = work(self.abort, self.moved)
        except BaseException as exc:  # handed to the caller's thread, which raises it
            self._error = exc
        finally:
            self._done.set()

    def wait(self, cancelled: Cancelled | None, step: Callable[[_Counter], None]) -> bytes:
        """Poll until the request ends; raise its error, or :class:`CancelledError` when ``cancelled()``.

        A cancelled upload stops at its next chunk; a detection already running
        on the server is left to finish there (its answer is dropped).
        """
        while not self._done.wait(POLL_S):
            if cancelled is not None and cancelled():
                self.abort.set()
                raise CancelledError()
            step(self.moved)
        if self._error is not None:
            raise self._error
        return self._value
