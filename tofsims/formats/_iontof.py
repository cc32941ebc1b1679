"""What IONTOF ITStr containers (ITA and ITM files) share: block paths, interval ids, header, peak list.

Both :mod:`.ita` (reduced image stacks) and :mod:`.itm` (raw ion streams) read their geometry,
calibration and mass intervals here, so neither needs the other for its metadata. The layout
and the properties read are described in :mod:`.ita`.
"""

from __future__ import annotations

import numpy as np

from doptrace.core.simulated import marker_in

from ..errors import ToFSIMSError
from . import itstr

IMAGES = "filterdata/TofCorrection/ImageStack/Reduced Data"
SCANS = IMAGES + "/ImageStackScans"
ADDED = IMAGES + "/ImageStackScansAdded"
SPECTRUM = "filterdata/TofCorrection/Spectrum/Reduced Data"
TOTAL_ID, REST_ID, FIRST_FRAGMENT_ID = 0, 1, 2
MAX_SIDE = 1 << 14  # pixels; IONTOF rasters go up to 4096 x 4096 (and 16384 is generous)
MAX_SCANS = 1 << 20
#: the text property doptrace's writer keeps a comment in (a simulated file's marker, :mod:`doptrace.core.simulated`)
COMMENT = "Analysis.Comment"


def _properties(f: itstr.ITStrFile) -> dict:
    props = {}
    for section in ("propstart", "propend"):  # propend wins: the state at the end of the run
        block = f.find(section)
        if block is None:
            continue
        for entry in f.children(block):
            if entry.type == itstr.LEAF:
                try:
                    record = f.keyvalue(f.block_at(entry.offset))
                except ToFSIMSError:
                    continue  # an odd record among thousands must not make the images unreadable
                props[record["key"] or entry.name] = record
    return props


def _prop(props: dict, *keys, kind: str = "float", default=None):
    for key in keys:
        if key in props:
            return props[key][kind]
    return default


def peak_list(f: itstr.ITStrFile) -> list[dict]:
    """The mass intervals: ``[{id, name, assign, desc, cmass, lmass, umass}]`` sorted by id."""
    block = f.find("MassIntervalList")
    peaks = []
    if block is None:
        return peaks
    for entry in f.children(block):
        if entry.name != "mi":
            continue
        mi = f.block_at(entry.offset)
        values = {}
        for child in f.children(mi):
            leaf = f.block_at(child.offset)
            values[child.name] = leaf
        if "id" not in values:
            raise ToFSIMSError(f"{f.path}: mass interval mi[{entry.id}] has no id")
        peak = {"id": f.scalar(values["id"], "i")}
        for key in ("assign", "desc", "SN"):
            peak[key] = (
                bytes(f.raw(values[key])).decode("utf-16-le", "replace").rstrip("\x00") if key in values else ""
            )
        for key in ("cmass", "lmass", "umass"):
            peak[key] = f.scalar(values[key], "d") if key in values else float("nan")
        peak["name"] = peak["assign"] or peak["desc"] or f"{peak['cmass']:.2f}u"
        peaks.append(peak)
    peaks.sort(key=lambda p: p["id"])
    seen: dict[str, int] = {}
    for peak in peaks:  # two intervals with one assignment: tell them apart by their centre
        seen[peak["name"]] = seen.get(peak["name"], 0) + 1
        if seen[peak["name"]] > 1:
            peak["name"] = f"{peak['name']} ({peak['cmass']:.3f}u)"
    return peaks


def header(f: itstr.ITStrFile) -> dict:
    """Image geometry, calibration and instrument settings, validated before any image is read."""
    props = _properties(f)
    nx = f.int32("Meta/SI Image/res_x")
    ny = f.int32("Meta/SI Image/res_y")
    if nx is None or ny is None:
        nx = f.int32(SCANS + "/Image.XSize", _prop(props, "Registration.Raster.Resolution", kind="int"))
        ny = f.int32(SCANS + "/Image.YSize", nx)
    fov = f.float64("Meta/SI Image/fieldofview", _prop(props, "Registration.Raster.FieldOfView"))
    n_scans = f.int32(IMAGES + "/NumberOfScans", f.int32(SCANS + "/Image.NumberOfScans"))
    if n_scans is None:
        n_scans = _prop(props, "Measurement.ScanNumber", kind="int")
    if nx is None or ny is None:
        raise ToFSIMSError(f"{f.path}: no image size (Meta/SI Image/res_x, res_y) in the file")
    if not (0 < nx <= MAX_SIDE and 0 < ny <= MAX_SIDE):
        raise ToFSIMSError(f"{f.path}: absurd image size {nx} x {ny} pixels (limit {MAX_SIDE})")
    if n_scans is not None and not (0 < n_scans <= MAX_SCANS):
        raise ToFSIMSError(f"{f.path}: absurd number of scans {n_scans}")
    if fov is not None and not (np.isfinite(fov) and 0 < fov < 1.0):
        raise ToFSIMSError(f"{f.path}: absurd field of view {fov} m")
    sf = f.float64(SPECTRUM + "/IMassScaleSFK0/sf", f.float64("MassScale/sf"))
    k0 = f.float64(SPECTRUM + "/IMassScaleSFK0/k0", f.float64("MassScale/k0"))
    polarity = str(_prop(props, "Instrument.Analyzer_Polarity_Switch", kind="string", default="")).lower()
    width = _prop(props, "Registration.TimeResolution")
    return {
        "nx": int(nx),
        "ny": int(ny),
        "n_scans": None if n_scans is None else int(n_scans),
        "field_of_view_um": float("nan") if fov is None else float(f"{fov * 1e6:.12g}"),  # m -> um without 1e-15 noise
        "sf": float("nan") if sf is None else sf,
        "k0": float("nan") if k0 is None else k0,
        "polarity": polarity if polarity in ("negative", "positive") else "unknown",
        "shots_per_pixel": int(_prop(props, "Registration.Raster.ShotsPerPixel", kind="int", default=0)),
        "channel_width_ns": float("nan") if width is None else width * 1e9,
        "sputter_time_total": float(_prop(props, "Analysis.SputterTime", "Measurement.SputterTime", default=0.0)),
        "primary_ion": str(_prop(props, "Instrument.LMIG.Species", kind="string", default="")),
        "dead_time_corrected": int(_prop(props, "Analysis.DeadTimeCorrection", kind="int", default=0)),
        "sample": str(_prop(props, "Analysis.SampleName", kind="string", default="")),
        "comment": str(_prop(props, COMMENT, kind="string", default="")),
        # a simulator's marker in any text property (doptrace's writes it as the comment)
        "simulated": marker_in(str(record.get("string", "")) for record in props.values()),
    }
