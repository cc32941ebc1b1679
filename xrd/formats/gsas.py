"""GSAS (GSAS-I) powder data files: STD, ESD, FXY, FXYE banks (``.gsas``, ``.gsa``, ``.XRA``, ``.fxye``).

Layout (GSAS manual, "powder data file"): line 1 is a title; an optional second line
``Instrument parameter file: NAME``; ``#`` comment lines; then one or more banks, each starting
with ``BANK IBANK NCHAN NREC BINTYP BCOEF1 BCOEF2 BCOEF3 BCOEF4 TYPE``.  For constant-wavelength
data BINTYP is ``CONST`` and BCOEF1/BCOEF2 are start and step in centidegrees.  Data records are
80 columns:

- STD: ten 8-column fields, each ``NCTR`` (I2, number of counters, blank = 1) + count (F6);
  variance = count / NCTR.
- ESD: five 16-column fields, count (F8) + esd (F8).
- FXY / FXYE: free format ``2theta(centideg) count [esd]`` per line.

GSAS-II (the reference engine of this project) keeps the first NCHAN-1 points of an STD bank;
this reader does the same so that the number of observations matches GSAS-II's (FAP.XRA:
NCHAN 5753 -> 5752 points, 15.00-130.02 deg).  Zero counts get weight zero, as in GSAS-II.
Negative values (the doptrace policy for every reader): refused in STD banks (detector counts);
kept in ESD/FXY/FXYE banks (often processed intensities) with weight 0, as GSAS-II weighs them,
counted in ``attrs["negative_values"]`` with a note.
"""

from __future__ import annotations

import numpy as np

from ._pattern import fail, make_pattern, read_text

NAME = "gsas"
EXTENSIONS = (".gsas", ".gsa", ".gss", ".xra", ".fxye", ".fxy", ".gda", ".raw", ".dat", ".std", ".esd")


def sniff(head: bytes) -> bool:
    """True when the first kilobytes look like a GSAS powder file (a ``BANK`` record line)."""
    if b"\x00" in head[:512]:
        return False
    text = head.decode("latin-1")
    return any(line.startswith("BANK") for line in text.splitlines()[1:40])


def _float(path, text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise fail(path, f"{what}: cannot read {text.strip()!r} as a number") from None


def _std(path, lines, nchan):
    """Counts and variances of an STD bank (fixed 8-column fields)."""
    counts, ncounters = [], []
    for lineno, line in lines:
        if "\x1a" in line:
            break
        line = line.rstrip("\r\n").ljust(80)
        for i in range(0, 80, 8):
            field = line[i:i + 8]
            if not field.strip():
                break  # a blank field ends this record's data (GSAS-II reads it the same way)
            nctr = field[:2].strip()
            counts.append(_float(path, field[2:8], f"line {lineno}, STD count field"))
            ncounters.append(int(_float(path, nctr, f"line {lineno}, STD NCTR field")) if nctr else 1)
        if len(counts) >= nchan:
            break
    return np.array(counts, float), np.maximum(np.array(ncounters, float), 1.0)


def _esd(path, lines):
    counts, esds = [], []
    for lineno, line in lines:
        line = line.rstrip("\r\n").ljust(80)
        for i in range(0, 80, 16):
            if not line[i:i + 8].strip():
                break
            counts.append(_float(path, line[i:i + 8], f"line {lineno}, ESD count field"))
            esds.append(_float(path, line[i + 8:i + 16], f"line {lineno}, ESD esd field"))
    return np.array(counts, float), np.array(esds, float)


def _fxy(path, lines, with_esd: bool):
    rows = []
    need = 3 if with_esd else 2
    for lineno, line in lines:
        parts = line.split()
        if not parts:
            continue
        if len(parts) < need:
            raise fail(path, f"line {lineno}: expected {need} numbers (2theta, count{', esd' if with_esd else ''}), found {len(parts)}")
        rows.append([_float(path, p, f"line {lineno}") for p in parts[:need]])
    if not rows:
        return np.empty((0, need))
    return np.array(rows, float)


def _banks(path, text):
    """[(bank_line_number, bank_line, [(line_number, data_line), ...]), ...] and the file header."""
    all_lines = text.splitlines()
    if not all_lines:
        raise fail(path, "file is empty")
    title = all_lines[0].strip()
    instrument_file = ""
    banks = []
    for number, line in enumerate(all_lines[1:], start=2):
        if number == 2 and line[:4].lower() == "inst" and ":" in line:
            instrument_file = line.split(":", 1)[1].strip().strip("[]").strip()
            continue
        if line.startswith("#"):
            continue
        if line.startswith("BANK"):
            banks.append((number, line.strip(), []))
            continue
        if line.startswith(("TIME_MAP", "Monitor")):
            raise fail(path, f"line {number}: {line.split()[0]} record: time-of-flight data, not a 2theta scan")
        if banks:
            banks[-1][2].append((number, line))
        elif line.strip():
            raise fail(path, f"line {number}: data before any BANK record")
    if not banks:
        raise fail(path, "no BANK record: not a GSAS powder data file")
    return title, instrument_file, banks


def read_all(path, **kw):
    """Every bank of a GSAS powder file as a list of patterns (see module docstring)."""
    text = read_text(path)
    title, instrument_file, banks = _banks(path, text)
    out = []
    seen = {}
    for index, (lineno, bank_line, lines) in enumerate(banks):
        words = bank_line.split()
        if len(words) < 4:
            raise fail(path, f"line {lineno}: BANK record {bank_line!r} is too short")
        if words[1] in seen:
            raise fail(path, f"line {lineno}: BANK {words[1]} appears again (first at line {seen[words[1]]}): "
                             "a file pasted twice or edited")
        seen[words[1]] = lineno
        nchan = int(_float(path, words[2], f"line {lineno}, NCHAN"))
        if nchan <= 0:
            raise fail(path, f"line {lineno}: BANK declares {nchan} points")
        upper = [w.upper() for w in words]
        bintyp = upper[4] if len(upper) > 4 else ""
        kind = next((k for k in ("FXYE", "FXY", "ESD", "STD", "ALT") if k in upper[5:]), "STD")
        if bintyp in ("RALF", "TIME_MAP", "SLOG") or kind == "ALT":
            raise fail(path, f"line {lineno}: {bintyp or kind} bank is time-of-flight data, not a 2theta scan")
        label = f"bank {words[1]}"
        rule = step = None
        if kind in ("FXY", "FXYE"):
            table = _fxy(path, lines, kind == "FXYE")
            if table.shape[0] == 0:
                raise fail(path, f"{label}: no data points")
            two_theta = table[:, 0] / 100.0
            counts = table[:, 1]
            esd = table[:, 2] if kind == "FXYE" else np.sqrt(np.clip(counts, 0.0, None))
            # as GSAS-II: non-positive points carry weight 0; negative values are kept and noted
            # (free-format banks hold processed intensities as often as counts)
            esd = np.where(counts > 0, esd, 0.0)
        else:
            if bintyp != "CONST" or len(words) < 7:
                raise fail(path, f"line {lineno}: {kind} bank needs 'CONST start step' (centidegrees), got {bank_line!r}")
            start = _float(path, words[5], f"line {lineno}, start") / 100.0
            step = _float(path, words[6], f"line {lineno}, step") / 100.0
            if not step > 0:
                raise fail(path, f"line {lineno}: step {step} deg is not positive")
            if kind == "STD":
                counts, nctr = _std(path, lines, nchan)
                keep = nchan - 1  # GSAS-II convention, see module docstring
                if counts.size < keep:
                    raise fail(path, f"{label}: truncated: BANK declares {nchan} points, only {counts.size} found")
                counts, nctr = counts[:keep], nctr[:keep]
                if np.any(counts < 0):
                    i = int(np.argmin(counts))
                    raise fail(path, f"{label}: negative count {counts[i]:g} at point {i + 1} of an STD bank "
                                     "(STD banks hold detector counts, which cannot be negative)")
                esd = np.sqrt(np.clip(counts, 0.0, None) / nctr)
                rule = "sqrt(count / NCTR) (GSAS STD); esd 0 (zero counts) means weight 0, as in GSAS-II"
            else:
                counts, esd = _esd(path, lines)
                if counts.size < nchan:
                    raise fail(path, f"{label}: truncated: BANK declares {nchan} points, only {counts.size} found")
                counts, esd = counts[:nchan], esd[:nchan]
            # GSAS-II gives non-positive points weight zero; negative ESD-bank values are kept and noted
            esd = np.where(counts > 0, esd, 0.0)
            two_theta = start + step * np.arange(counts.size)
        out.append((two_theta, counts, esd, words[1], kind, bintyp, step, rule))
    return [
        make_pattern(
            x, y, e, path=path, fmt=f"gsas-{kind.lower()}", range_index=i, n_ranges=len(out), sample=title,
            step=step, esd_rule=rule, counts_kind="counts" if kind == "STD" else "intensity",
            extra={"bank": bank, "bintyp": bintyp, "instrument_file": instrument_file},
        )
        for i, (x, y, e, bank, kind, bintyp, step, rule) in enumerate(out)
    ]
