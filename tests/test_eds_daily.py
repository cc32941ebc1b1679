"""EDS daily use: the single-spectrum plot marks what was integrated or fitted; block sizes; TIFF export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from doptrace.report.cli import main
from doptrace.report.conventions import read_netcdf
from doptrace.stem_eds import read
from doptrace.stem_eds.errors import EDSError
from doptrace.stem_eds.pipeline import analyse, intensities, parse_blocks
from doptrace.stem_eds.plot_spectrum import model_curves, plot_spectrum
from doptrace.stem_eds.simulate import kfactor_toml, simulate_spectrum_image

ELEMENTS = "O,Mn,Co,Ni"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import exspy  # noqa: F401
    import hyperspy.api as hs

    folder = tmp_path_factory.mktemp("eds_daily")
    image = folder / "si.hspy"
    simulate_spectrum_image(image, shape=(16, 16), kind="uniform", seed=3)
    signal = hs.load(image)
    summed = signal.sum(axis=(0, 1))  # one spectrum, as a point analysis saves it
    single = folder / "point.hspy"
    summed.save(single)
    kfile = folder / "k.toml"
    kfile.write_text(kfactor_toml())
    return folder, image, single, kfile


def test_model_curves_reproduce_the_fitted_intensities(files):
    _, _, single, _ = files
    da = read(single)
    assert da.dims == ("energy",)
    ds = intensities(da, ELEMENTS, method="model")
    amplitudes = {k: v for curve in model_curves(da, ds) for k, v in curve["amplitudes"].items()}
    for element, line in zip(ds["element"].values, ds["line"].values):
        family = f"{element}_{str(line).split('_')[1][0]}"  # Mn_Ka -> Mn_K
        assert amplitudes[family] == pytest.approx(float(ds["intensity"].sel(element=element)), rel=1e-9)
    # the model follows the counts where it was fitted: residuals at the Poisson level
    for curve in model_curves(da, ds):
        i0, i1 = curve["channels"]
        y = np.asarray(da.values[i0:i1], float)
        chi2 = np.sum((y - curve["model"]) ** 2 / np.maximum(curve["model"], 1.0)) / y.size
        assert chi2 < 3, chi2


def test_windows_plot_marks_the_integration_and_background_windows(files):
    _, _, single, _ = files
    da = read(single)
    ds = intensities(da, ELEMENTS, method="windows")
    fig = plot_spectrum(da, ds, "point")
    ax = fig.axes[0]
    spans = sorted((round(p.get_x(), 6), round(p.get_x() + p.get_width(), 6)) for p in ax.patches)
    windows = json.loads(ds.attrs["windows"])
    for w in windows.values():
        assert (round(w["window"][0], 6), round(w["window"][1], 6)) in spans
        bw = w["background"]
        assert (round(bw[0], 6), round(bw[1], 6)) in spans and (round(bw[2], 6), round(bw[3], 6)) in spans
    # the dashed background level under each line is the background windows' mean count per channel
    levels = [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--"]
    assert len(levels) == len(windows) and min(levels) > 0
    assert not any(type(p).__name__ == "BarContainer" for p in ax.containers)


def test_quantify_cli_single_spectrum_plot_and_map_tiff_export(files, capsys, tmp_path):
    import tifffile

    folder, image, single, kfile = files
    code = main(["eds", "quantify", str(single), "--elements", ELEMENTS, "--kfactors", str(kfile), "--quiet",
                 "--out", str(tmp_path / "q.nc"), "--plot", str(tmp_path / "q.png")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "q.png").read_bytes()[:4] == b"\x89PNG"
    code = main(["eds", "quantify", str(image), "--elements", ELEMENTS, "--kfactors", str(kfile), "--quiet",
                 "--out", str(tmp_path / "m.nc"), "--tiff", str(tmp_path / "tif")])
    assert code == 0, capsys.readouterr().err
    result = read_netcdf(tmp_path / "m.nc")
    side = json.loads((tmp_path / "tif" / "si_quantify_axes.json").read_text())
    assert side["axes"]["x"]["pixel_size"] == pytest.approx(2.0)
    checked = 0
    for entry in side["files"]:
        if entry["variable"] == "atomic_percent":
            np.testing.assert_array_equal(tifffile.imread(tmp_path / "tif" / entry["file"]),
                                          result["atomic_percent"].sel(element=entry["label"]).values)
            checked += 1
    assert checked == 4


def test_block_sizes_chosen_on_the_cli_and_in_a_project(files, capsys, tmp_path):
    folder, image, _, kfile = files
    code = main(["eds", "maps", str(image), "--elements", ELEMENTS, "--quiet", "--out", str(tmp_path / "m.nc")])
    assert code == 0
    code = main(["eds", "homogeneity", str(tmp_path / "m.nc"), "--blocks", "2,4", "--out", str(tmp_path / "h.nc")])
    assert code == 0, capsys.readouterr().err
    assert read_netcdf(tmp_path / "h.nc")["block_size"].values.tolist() == [2, 4]
    results = analyse(image, ELEMENTS.split(","), kfactors=kfile, blocks=[8, 2])
    assert results["homogeneity"]["block_size"].values.tolist() == [2, 8]
    code = main(["eds", "homogeneity", str(tmp_path / "m.nc"), "--blocks", "2,x", "--out", str(tmp_path / "h2.nc")])
    assert code == 2 and "m.nc: block sizes '2,x'" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0,2", "2.5", "a"])
def test_bad_block_sizes(text):
    with pytest.raises(EDSError, match="block sizes"):
        parse_blocks(text)
