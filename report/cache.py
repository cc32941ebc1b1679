"""Result cache: an analysis is redone only when its inputs, its parameters or doptrace's code change.

The key of one analysis is the sha256 of its technique, its settings (every input file by content
hash as well as path, since results name their source), doptrace's version and a fingerprint of
the code that computes results. A manifest per analysis, ``OUT/cache/<entry>.json``, records the key
and the sha256 of each result file written (paths relative to ``OUT``, so a moved output folder
keeps its cache); a later run whose key matches and whose result files are still there, byte for
byte, reuses them untouched.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from pathlib import Path

from doptrace.core.atomic import write_text

from . import __version__
from .errors import ReportError
from .provenance import sha256_file

#: modules every technique's results pass through; each adapter adds its own ``CODE`` packages
COMMON_CODE = ("doptrace.core", "doptrace.report.conventions")
_SUFFIXES = (".py", ".toml", ".csv", ".json")


def code_files() -> list[tuple[str, Path]]:
    """``(name, path)`` of every source file that decides what a result holds, in a stable order.

    :data:`COMMON_CODE`, then per discovered adapter its own module and every file of the packages
    it names in ``CODE`` (their .py, .toml, .csv and .json files, sub-packages included), so a new
    technique's results are keyed to its code without this module naming it.
    """
    from .techniques import adapters

    names = list(COMMON_CODE)
    for adapter in adapters().values():
        names += [adapter.__name__, *getattr(adapter, "CODE", ())]
    files = []
    for name in dict.fromkeys(names):
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ReportError(f"code fingerprint: module {name} not found")
        if spec.submodule_search_locations:
            for root in spec.submodule_search_locations:
                root = Path(root)
                files += [(f"{name}/{p.relative_to(root).as_posix()}", p) for p in sorted(root.rglob("*"))
                          if p.suffix in _SUFFIXES and p.is_file() and "__pycache__" not in p.parts]
        else:
            files.append((name, Path(spec.origin)))
    return files


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over the source of the modules and packages that compute results (:func:`code_files`)."""
    digest = hashlib.sha256()
    for name, file in code_files():
        digest.update(name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def entry_key(entry, hashes: dict[str, str]) -> str:
    """Cache key of one project entry; ``hashes`` maps input paths (str) to their sha256."""
    settings = {}
    for key, value in sorted(entry.settings.items()):
        if isinstance(value, Path):
            settings[key] = {"path": str(value), "sha256": hashes.get(str(value)) or sha256_file(value)}
        else:
            settings[key] = value
    text = json.dumps({"technique": entry.technique, "sample": entry.sample, "index": entry.index,
                       "settings": settings, "version": __version__, "code": code_fingerprint()},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_path(cache_dir: Path, entry) -> Path:
    return Path(cache_dir) / f"{entry.key}.json"


def lookup(cache_dir: Path, entry, key: str) -> dict | None:
    """The manifest of a still-valid earlier run of ``entry`` under ``key``, else None."""
    path = manifest_path(cache_dir, entry)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        return None
    outputs = manifest.get("outputs", [])
    if not outputs or not isinstance(outputs, list):
        return None
    root = Path(cache_dir).parent
    resolved = []
    for record in outputs:
        if not isinstance(record, dict) or not record.get("path"):
            return None
        file = root / record["path"]
        if not file.is_file() or sha256_file(file) != record.get("sha256"):
            return None
        resolved.append({**record, "path": str(file)})
    return {**manifest, "outputs": resolved}


def store(cache_dir: Path, entry, key: str, outputs: list[dict], seconds: float) -> None:
    """Record a finished analysis; ``outputs`` are ``{"name", "path", "sha256"}`` of its result files."""
    root = Path(cache_dir).resolve().parent
    relative = [{**o, "path": Path(o["path"]).resolve().relative_to(root).as_posix()} for o in outputs]
    write_text(manifest_path(cache_dir, entry),
               json.dumps({"key": key, "outputs": relative, "seconds": round(seconds, 3)}, indent=2))


def forget(cache_dir: Path, entry, keep: set[str] = frozenset()) -> None:
    """Drop an entry's manifest and the result files it listed (except ``keep``), e.g. after a failure.

    Result files of an earlier, different run must not outlive a failed re-run: they would look
    like results of the current inputs.
    """
    path = manifest_path(cache_dir, entry)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    root = Path(cache_dir).parent
    keep = {str(Path(k).resolve()) for k in keep}
    for record in manifest.get("outputs", []) if isinstance(manifest, dict) else []:
        if not isinstance(record, dict) or not record.get("path"):
            continue
        file = (root / str(record["path"])).resolve()
        if str(file) not in keep and file.is_file() and file.parent == (root / "results").resolve():
            file.unlink()
    path.unlink(missing_ok=True)


def report_key(project_sha256: str, entry_keys: list[str]) -> str:
    """Key of everything the report is drawn from: the project file and every analysis's key."""
    return hashlib.sha256(json.dumps([project_sha256, entry_keys, __version__, code_fingerprint()]).encode()).hexdigest()


def report_current(cache_dir: Path, key: str) -> bool:
    """True when the report files recorded under ``key`` are all still there, byte for byte."""
    try:
        record = json.loads((Path(cache_dir) / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("key") != key or not isinstance(record.get("files"), dict):
        return False
    root = Path(cache_dir).parent
    return all((root / name).is_file() and sha256_file(root / name) == digest
               for name, digest in record["files"].items())


def store_report(cache_dir: Path, key: str, files: list[Path]) -> None:
    """Record the report files written from ``key`` (paths inside the output folder)."""
    root = Path(cache_dir).resolve().parent
    digests = {Path(f).resolve().relative_to(root).as_posix(): sha256_file(f) for f in files}
    write_text(Path(cache_dir) / "report.json", json.dumps({"key": key, "files": digests}, indent=2))
