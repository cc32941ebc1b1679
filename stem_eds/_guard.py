"""Run a file read in a child process with a time limit (the watchdog of the EDS readers).

Why hand-written: a corrupt HDF5 file (``.hspy``, ``.emd``) can send the HDF5 C library into a loop
that never returns to Python, and RosettaSciIO's compiled Bruker unpacker can crash the interpreter
on a bad ``.bcf``; neither can be interrupted from Python code (no signal handler runs while C code
holds the thread).  So the read runs in a forked child: when it does not finish within the time
limit the child is killed and the caller gets an :class:`EDSError`; when the child dies (signal)
the caller gets an :class:`EDSError` too.  ``concurrent.futures`` and ``multiprocessing.Pool``
cannot kill a stuck worker, and ``multiprocessing.Process`` refuses to start from daemonic pool
workers (where ``doptrace run`` reads), hence ``os.fork`` and a pipe.

The result travels back without pickle: counts as a ``.npy`` file (``/dev/shm`` when it has room,
else the temporary folder; written once, read once, then deleted) and the rest as JSON.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from .errors import EDSError

#: Seconds any read may take, plus :data:`SECONDS_PER_MB` per MB of file.
BASE_SECONDS = 12.0
SECONDS_PER_MB = 0.5


def default_timeout(path) -> float:
    """Time limit for reading ``path``: 12 s plus 0.5 s per MB (a 2 GB file gets ~17 min)."""
    try:
        size_mb = Path(path).stat().st_size / 2**20
    except OSError:
        size_mb = 0.0
    return BASE_SECONDS + SECONDS_PER_MB * size_mb


def available() -> bool:
    """True where the watchdog can run (``os.fork`` exists: Linux, macOS, BSD)."""
    return hasattr(os, "fork")


def _scratch_dirs() -> list[Path]:
    dirs = []
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        dirs.append(Path(tempfile.mkdtemp(prefix="doptrace-eds-", dir=shm)))
    dirs.append(Path(tempfile.mkdtemp(prefix="doptrace-eds-")))
    return dirs


def _write_array(array: np.ndarray, dirs: list[Path]) -> str:
    """Write ``array`` as ``.npy`` into the first scratch folder with room for it; its path."""
    need = array.nbytes + (1 << 20)
    for folder in dirs:
        if shutil.disk_usage(folder).free > 2 * need or folder == dirs[-1]:
            target = folder / "counts.npy"
            np.save(target, np.ascontiguousarray(array), allow_pickle=False)
            return str(target)
    raise AssertionError("unreachable")  # the last folder is always taken


def _plain(value):
    """JSON for numpy scalars and arrays in metadata (``json.dumps`` default)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _child(write_fd: int, func, args, kwargs, dirs) -> None:
    """Body of the forked child: run ``func``, report JSON on ``write_fd``; never returns."""
    code = 0
    try:
        import faulthandler

        faulthandler.disable()  # a decoder crash is reported by the parent in one line, not as a C-level dump
        try:
            result = func(*args, **kwargs)
            message = {"ok": True}
            if result is not None:
                meta, arrays = result
                message["meta"] = meta
                message["arrays"] = {name: _write_array(a, dirs) if i == 0 else None
                                     for i, (name, a) in enumerate(arrays.items())}
                # small arrays (coordinates) go inline, exactly (repr of a float round-trips)
                message["inline"] = {name: [np.asarray(a).dtype.str, np.asarray(a).tolist()]
                                     for i, (name, a) in enumerate(arrays.items()) if i > 0}
        except EDSError as exc:
            message = {"ok": False, "error": str(exc)}
        except MemoryError:
            message = {"ok": False, "memory": True}
        except BaseException as exc:  # noqa: BLE001 - anything else is reported, then named by the parent
            text = str(exc).splitlines()[0] if str(exc) else ""
            message = {"ok": False, "unexpected": f"{type(exc).__name__}: {text}"[:300],
                       "where": "".join(traceback.format_tb(exc.__traceback__, limit=-1)).strip()[-300:]}
        data = json.dumps(message, default=_plain).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view):]
    except BaseException:  # noqa: BLE001 - the parent sees a child that died without an answer
        code = 70
    finally:
        os._exit(code)


def run(path, func, *args, timeout: float | None = None, **kwargs):
    """Call ``func(*args, **kwargs)`` in a forked child with a time limit.

    ``func`` returns None (a check) or ``(meta, arrays)``: ``meta`` JSON-able, ``arrays`` a dict of
    numpy arrays whose first entry is the large one (sent as a ``.npy`` file) and the others small
    (sent inline).  Returns ``(meta, arrays)`` or None; raises ``EDSError`` naming ``path`` when the
    child raises it, times out, runs out of memory or dies.
    """
    limit = default_timeout(path) if timeout is None else float(timeout)
    dirs = _scratch_dirs()
    read_fd, write_fd = os.pipe()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python >= 3.12 warns when threads exist
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            os.close(read_fd)
            _child(write_fd, func, args, kwargs, dirs)
        os.close(write_fd)
        write_fd = -1
        chunks, deadline, timed_out = [], time.monotonic() + limit, False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if ready:
                block = os.read(read_fd, 1 << 16)
                if not block:
                    break
                chunks.append(block)
        if timed_out:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
        if timed_out:
            raise EDSError(f"{path}: reading did not finish within {limit:.0f} s and was stopped "
                           "(a corrupt file can make the HDF5 or Bruker decoder loop forever)")
        try:
            message = json.loads(b"".join(chunks).decode()) if chunks else None
        except ValueError:
            message = None
        if message is None:
            how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"exit status {os.WEXITSTATUS(status) if os.WIFEXITED(status) else status}")
            raise EDSError(f"{path}: the file decoder crashed ({how}): the file is corrupt")
        if not message["ok"]:
            if message.get("memory"):
                raise EDSError(f"{path}: reading needs more memory than is available (corrupt sizes, or read it lazily)")
            if "error" in message:
                raise EDSError(message["error"])
            raise EDSError(f"{path}: cannot be read ({message['unexpected']})")
        if "meta" not in message:
            return None
        arrays = {}
        for name, where in message["arrays"].items():
            if where is not None:
                arrays[name] = np.load(where, allow_pickle=False)
        for name, (dtype, values) in message["inline"].items():
            arrays[name] = np.asarray(values, dtype=np.dtype(dtype))
        return message["meta"], arrays
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        for folder in dirs:
            shutil.rmtree(folder, ignore_errors=True)
