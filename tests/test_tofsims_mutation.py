"""Seeded, bounded mutation test of every ToF-SIMS reader (issue 12).

Seed files come from the simulators (``tofsims.simulate`` writes the real formats: ITA, ITM,
IONTOF ASCII spectrum/profile/image exports, event lists; imzML through pyimzml's writer) and,
when ``../shared/data`` is present, from the real exports. Each case (truncations, byte flips,
absurd sizes written over binary integers, numbers replaced by NaN/inf/huge/negative/garbage,
dropped/duplicated lines) is read in a forked child with an address-space limit and a wall-clock
limit: every outcome must be a Dataset or a ``ToFSIMSError`` (never another exception, a hang or
an unbounded allocation), and a returned Dataset holds finite numbers (SurfaceLab's ratio
columns aside). The case list is a function of the seed only; 40 cases per reader.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import resource
import time
import traceback
from pathlib import Path

import numpy as np
import pytest

from doptrace import tofsims
from doptrace.tofsims import simulate
from doptrace.tofsims.errors import ToFSIMSError
from doptrace.tofsims.masses import peak_windows

from conftest import SHARED_DATA

N_CASES = 40
CASE_SECONDS = 10.0  # per case; a clean read of these small seeds takes well under a second
EXTRA_ADDRESS_SPACE = 3 << 30  # a case may allocate at most this much beyond the interpreter


# -- seeds ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """``{reader: [(path, kwargs, kind)]}``: simulated seeds, plus the real files when present."""
    folder = tmp_path_factory.mktemp("seeds")
    truth = simulate.poisson_counts(simulate.phantom(shape=(3, 8, 8), seed=1), seed=1)
    frags = [str(f) for f in truth["fragment"].values]
    out: dict[str, list] = {}
    simulate.write_ita(folder / "sim.ita", truth, seed=1)
    out["ita"] = [(folder / "sim.ita", {}, "binary")]
    small = simulate.poisson_counts(simulate.phantom(shape=(2, 6, 6), seed=2), seed=2)
    simulate.write_itm(folder / "sim.itm", small, seed=2)
    out["itm"] = [(folder / "sim.itm", {"fragments": [str(f) for f in small["fragment"].values][:2]}, "binary")]
    paths = simulate.write_ascii_exports(folder / "ascii", truth, seed=1)
    out["ascii_spectrum"] = [(paths["spectrum"], {}, "text")]
    out["ascii_profile"] = [(paths["profile"], {}, "text")]
    out["ascii_image"] = [(next(iter(paths["images"].values())), {}, "text")]
    shape = tuple(truth["counts"].transpose("fragment", "scan", "y", "x").shape[1:])
    simulate.write_events(folder / "sim.events", truth, seed=1)
    out["events"] = [(folder / "sim.events", {"windows": peak_windows(frags), "shape": shape,
                                               "sf": float(truth.attrs["sf"]), "k0": float(truth.attrs["k0"])},
                      "binary")]
    out["imzml"] = [_imzml_seed(folder)]
    real = SHARED_DATA / "tofsims"
    if real.is_dir():
        out["ascii_spectrum"] += [(p, {}, "text") for p in sorted((real / "iontof_spectrum_txt").glob("*.txt"))
                                  if not p.name.startswith("LICENSE")]
        out["ascii_profile"] += [(p, {}, "text") for p in sorted((real / "surfacelab7").glob("xlab_*.txt"))]
    return out


def _imzml_seed(folder: Path):
    from pyimzml.ImzMLWriter import ImzMLWriter

    truth = simulate.poisson_counts(simulate.phantom((2, 3, 4), seed=3), seed=3)
    counts = truth["counts"].values
    mzs = truth["fragment_mass"].values
    order = np.argsort(mzs)
    path = folder / "sim.imzML"
    with ImzMLWriter(str(path), mz_dtype=np.float64, intensity_dtype=np.float64, polarity="negative") as writer:
        for s in range(2):
            for y in range(3):
                for x in range(4):
                    writer.addSpectrum(mzs[order], counts[:, s, y, x][order].astype(float), (x + 1, y + 1, s + 1))
    return path, {"fragments": [str(f) for f in truth["fragment"].values]}, "imzml"


# -- mutations ------------------------------------------------------------------------------------
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_REPLACEMENTS = (b"nan", b"NaN", b"inf", b"-inf", b"1e308", b"1e999", b"-1", b"0", b"9223372036854775808",
                 b"4294967296", b"garbage", b"", b"1.5.5", b"-0")
_ABSURD = (0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0, 1 << 62, (1 << 64) - 1)


def _mutate(data: bytes, kind: str, rng: np.random.Generator) -> tuple[str, bytes]:
    n = len(data)
    ops = ["truncate", "flip", "flip_many", "absurd", "zero_block"]
    if kind in ("text", "imzml"):
        ops += ["number", "number", "number", "line_drop", "line_dup"]
    op = ops[int(rng.integers(len(ops)))]
    if op == "truncate":
        cut = int(rng.integers(0, n))
        return f"truncate@{cut}", data[:cut]
    if op in ("flip", "flip_many"):
        buf = bytearray(data)
        where = rng.integers(0, n, 1 if op == "flip" else int(rng.integers(2, 16)))
        for w in where:
            buf[int(w)] ^= int(rng.integers(1, 256))
        return f"{op}@{int(where[0])}", bytes(buf)
    if op == "absurd":
        buf = bytearray(data)
        value = _ABSURD[int(rng.integers(len(_ABSURD)))]
        width = 8 if value > 0xFFFFFFFF else 4
        at = int(rng.integers(0, max(1, n - width)))
        buf[at : at + width] = value.to_bytes(8, "little")[:width]
        return f"absurd@{at}={value}", bytes(buf)
    if op == "zero_block":
        at, size = int(rng.integers(0, n)), int(rng.integers(1, 64))
        return f"zero@{at}+{size}", data[:at] + b"\x00" * size + data[at + size :]
    if op == "number":
        numbers = list(_NUMBER.finditer(data[:200_000]))
        if not numbers:
            return "number:none", data
        m = numbers[int(rng.integers(len(numbers)))]
        new = _REPLACEMENTS[int(rng.integers(len(_REPLACEMENTS)))]
        return f"number@{m.start()}={new.decode()}", data[: m.start()] + new + data[m.end() :]
    lines = data.split(b"\n")
    i = int(rng.integers(len(lines)))
    if op == "line_drop":
        return f"line_drop@{i}", b"\n".join(lines[:i] + lines[i + 1 :])
    return f"line_dup@{i}", b"\n".join(lines[: i + 1] + lines[i:])


def _cases(seeds_of_reader, seed: int):
    """``N_CASES`` cases spread over the reader's seed files: (label, seed path, kwargs, bytes)."""
    rng = np.random.default_rng(seed)
    cases = []
    for k in range(N_CASES):
        path, kwargs, kind = seeds_of_reader[k % len(seeds_of_reader)]
        label, data = _mutate(path.read_bytes(), kind, rng)
        cases.append((f"{path.name}:{label}", path, kwargs, data))
    return cases


# -- the bounded child ----------------------------------------------------------------------------
def _vm_size() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _one(conn, path, kwargs, limit):
    """Child: read ``path`` under an address-space limit; send the outcome."""
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        ds = tofsims.read(path, **kwargs)
        bad = [name for name, da in ds.data_vars.items()
               if name != "ratio" and np.issubdtype(da.dtype, np.floating) and not np.all(np.isfinite(da.values))]
        conn.send(("garbage", f"non-finite {bad}") if bad else ("value", ""))
    except ToFSIMSError as exc:
        conn.send(("error", str(exc).splitlines()[0][:200] if str(exc) else ""))
    except BaseException as exc:  # noqa: BLE001 - the point of the test: report anything else
        conn.send(("crash", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}"))
    finally:
        conn.close()


def _run(case_dir: Path, cases, companions=()):
    ctx = mp.get_context("fork")
    limit = _vm_size() + EXTRA_ADDRESS_SPACE
    outcomes = []
    for index, (label, seed_path, kwargs, data) in enumerate(cases):
        folder = case_dir / f"case{index}"
        folder.mkdir()
        path = folder / seed_path.name
        path.write_bytes(data)
        for ext in companions:  # the imzML's .ibd travels unchanged
            companion = seed_path.with_suffix(ext)
            (folder / companion.name).write_bytes(companion.read_bytes())
        before = data
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_one, args=(child, path, kwargs, limit))
        start = time.monotonic()
        proc.start()
        child.close()
        if parent.poll(CASE_SECONDS):
            outcome = parent.recv()
        else:
            outcome = ("hang", f"no answer within {CASE_SECONDS} s")
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
        if proc.exitcode not in (0, None) and outcome[0] in ("value", "error"):
            outcome = ("crash", f"child exit code {proc.exitcode}")
        assert path.read_bytes() == before, f"{label}: the reader modified its input"
        outcomes.append((label, *outcome, time.monotonic() - start))
    return outcomes


@pytest.mark.parametrize("reader", ["ita", "itm", "ascii_spectrum", "ascii_profile", "ascii_image", "imzml",
                                    "events"])
@pytest.mark.parametrize("seed", [12])
def test_mutated_files_read_or_fail_cleanly(seeds, reader, seed, tmp_path):
    cases = _cases(seeds[reader], seed)
    outcomes = _run(tmp_path, cases, companions=(".ibd",) if reader == "imzml" else ())
    bad = [f"{label}: {kind}: {detail}" for label, kind, detail, _ in outcomes
           if kind not in ("value", "error")]
    assert not bad, "\n".join(bad)
    kinds = [kind for _, kind, _, _ in outcomes]
    # the mutations bite: most cases are refused with the package's error
    assert kinds.count("error") >= len(cases) // 4, kinds
    # and every error message names the file
    for (label, kind, detail, _), (_, _, _, _) in zip(outcomes, cases):
        if kind == "error":
            assert "case" in detail and "/" in detail, f"{label}: error without the file name: {detail}"
