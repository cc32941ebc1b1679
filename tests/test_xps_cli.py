"""``doptrace xps info|fit|quantify``: outputs, and one-line errors with no output file on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from doptrace.report.cli import main
from doptrace.report.conventions import read_netcdf
from doptrace.xps.simulate import simulate_series

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "xps"


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    path = tmp_path_factory.mktemp("xps") / "series.vms"
    truth = simulate_series(path, etch_times=(0, 50, 150, 300), regions=("B 1s", "C 1s", "O 1s"), seed=21,
                            charge=[0.4, 0.3, 0.2, 0.1])
    return path, truth


def test_info(series, capsys):
    assert main(["xps", "info", str(series[0])]) == 0
    out = capsys.readouterr().out
    assert "12 block(s)" in out
    assert "B 1s: 4 block(s)" in out and "etch times (s): 0, 50, 150, 300" in out


def test_fit_writes_result_and_plot(series, tmp_path, capsys):
    path, truth = series
    out, plot = tmp_path / "r.nc", tmp_path / "r.png"
    assert main(["xps", "fit", str(path), "--model", str(EXAMPLES / "b1s.toml"), "--out", str(out),
                 "--plot", str(plot), "--c1s"]) == 0
    ds = read_netcdf(out)
    assert ds.attrs["technique"] == "XPS" and ds.attrs["fitted"] == "area center fwhm fraction group_fraction"
    for name in ("area", "center", "fwhm", "fraction", "redchi", "data", "background", "envelope", "component_curve"):
        assert name in ds
    share = ds["fraction"].sel(component="TM-O-B").values
    err = ds["fraction_stderr"].sel(component="TM-O-B").values
    assert np.all(np.abs(share - truth["regions"]["B 1s"]["fraction"][:, 1]) < 2.5 * err)
    assert np.allclose(ds["charge_shift"].values, [-0.4, -0.3, -0.2, -0.1], atol=0.08)
    assert plot.stat().st_size > 5000


def test_quantify(series, tmp_path):
    out = tmp_path / "q.nc"
    assert main(["xps", "quantify", str(series[0]), "--regions", "B 1s,O 1s", "--out", str(out)]) == 0
    q = read_netcdf(out)
    assert np.allclose(q["atomic_percent"].sum("element").values, 100)


def _bad_model(tmp_path, text):
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


BASE = (EXAMPLES / "b1s.toml").read_text()


@pytest.mark.parametrize("make,expected", [
    (lambda t: t.replace("window = [186.0, 197.0]", "window = [600.0, 620.0]"), "model window [600.0, 620.0] eV"),
    (lambda t: t.replace('same_as = "B-O-B"', 'same_as = "B-O-Q"'), "unknown component 'B-O-Q'"),
    (lambda t: t.replace('center = [192.0, 191.7, 192.3]', 'center = { offset_from = "TM-O-B", by = 0.9 }')
     .replace('center = [191.1, 190.8, 191.4]', 'center = { offset_from = "B-O-B", by = -0.9 }'), "circular center link"),
])
def test_bad_models_one_line_error_and_no_output(series, tmp_path, capsys, make, expected):
    model = _bad_model(tmp_path, make(BASE))
    out = tmp_path / "r.nc"
    code = main(["xps", "fit", str(series[0]), "--model", str(model), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("doptrace: error: ") and err.count("\n") == 1
    assert expected in err
    assert not out.exists() and list(tmp_path.glob("*.nc*")) == []


def test_bad_files(series, tmp_path, capsys):
    text = series[0].read_text()
    truncated = tmp_path / "cut.vms"
    truncated.write_text(text[: len(text) // 3])
    garbage = tmp_path / "noise.vms"
    garbage.write_bytes(b"\x00\x01not a vamas file at all\n")
    with open(series[0], newline="") as handle:
        lines = handle.read().split("\r\n")
    lines[-50] = "nan"  # one count of the last block
    nan_counts = tmp_path / "nan.vms"
    nan_counts.write_text("\r\n".join(lines), newline="")
    for bad in (truncated, garbage, tmp_path / "missing.vms", nan_counts):
        out = tmp_path / "r.nc"
        code = main(["xps", "fit", str(bad), "--model", str(EXAMPLES / "b1s.toml"), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("doptrace: error: ") and err.count("\n") == 1, err
        assert bad.name in err
        assert not out.exists()
    assert "NaN" in err
    code = main(["xps", "fit", str(series[0]), "--casa", "--out", str(tmp_path / "c.nc")])
    err = capsys.readouterr().err
    assert code == 2 and "no CASA comp lines" in err
    code = main(["xps", "fit", str(series[0]), "--model", str(EXAMPLES / "in3d.toml"), "--out", str(tmp_path / "c.nc")])
    assert code == 2 and "no blocks of region 'In 3d'" in capsys.readouterr().err


def test_casa_refit_cli(shared, tmp_path):
    out = tmp_path / "mo.nc"
    assert main(["xps", "fit", str(shared("xps/cheminfo-vamas/assigned.vms")), "--casa", "--region", "Mo 3d",
                 "--out", str(out)]) == 0
    ds = read_netcdf(out)
    assert "casa_area" in ds and ds["casa_area"].attrs["units"] == ds["area"].attrs["units"]
    assert ds.sizes["component"] == 10


@pytest.mark.parametrize("extra,expected", [
    (["--plot", "fit.xyz"], "fit.xyz: unknown figure format '.xyz'"),
    (["--plot", "fit.png", "--plot-level", "4"], "--plot-level 4 is out of range (the fit has 4 level(s): 0..3)"),
])
def test_bad_plot_options_leave_no_output(series, tmp_path, capsys, monkeypatch, extra, expected):
    monkeypatch.chdir(tmp_path)
    code = main(["xps", "fit", str(series[0]), "--model", str(EXAMPLES / "b1s.toml"), "--out", "r.nc", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("doptrace: error: ") and err.count("\n") == 1, err
    assert expected in err
    assert list(tmp_path.iterdir()) == []


def test_empty_block_on_the_cli(series, tmp_path, capsys):
    """A block with 0 data points: one line naming the file, no result."""
    with open(series[0], newline="") as handle:
        lines = handle.read().split("\r\n")
    end = len(lines) - 1 - lines[::-1].index("end of experiment")
    n = 141  # the last block is O 1s, 524-538 eV in 0.1 eV steps; its count line precedes min, max, values
    assert lines[end - n - 3] == str(n)
    broken = lines[: end - n - 3] + ["0", "1", "1", "end of experiment", ""]
    bad = tmp_path / "empty.vms"
    bad.write_text("\r\n".join(broken), newline="")
    out = tmp_path / "r.nc"
    code = main(["xps", "fit", str(bad), "--model", str(EXAMPLES / "b1s.toml"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "empty.vms" in err and "empty block (0 data points)" in err, err
    assert not out.exists()
