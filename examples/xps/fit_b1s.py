"""Fit the B 1s model (b1s.toml beside this file) to a simulated XPS etch series.

Run it in any folder: ``python fit_b1s.py``. It writes ``b1s-series.vms`` there with the
simulator (boron doped into the bulk: the TM-O-B share of B 1s rises from 0.10 to 0.50 with
etch time, each level charged by a different shift), charge-corrects every level on its C 1s
C-C peak (284.8 eV), fits B 1s at every level and prints the fitted TM-O-B share beside the
simulator's truth, one tab-separated row per level (and the charge found, whose
uncertainty the fit does not give: ``-``).
"""

from pathlib import Path

from doptrace import xps

HERE = Path(__file__).resolve().parent


def main(path="b1s-series.vms"):
    truth = xps.simulate_series(path, regions=("B 1s", "C 1s"), charge=[0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 2.8],
                                seed=3)
    blocks = xps.read(path)
    model = xps.load_model(HERE / "b1s.toml")
    result = xps.fit_region(blocks, model, c1s=True)
    share = result["fraction"].sel(component="TM-O-B").values
    share_err = result["fraction_stderr"].sel(component="TM-O-B").values
    true_share = truth["regions"]["B 1s"]["fraction"][:, truth["regions"]["B 1s"]["components"].index("TM-O-B")]
    print("quantity\tfitted\tstderr\ttruth")
    for t, value, err, true in zip(truth["etch_time"], share, share_err, true_share):
        print(f"TM-O-B share at {t:g} s\t{value:.4f}\t{err:.4f}\t{true:.4f}")
    for t, shift, true in zip(truth["etch_time"], result["charge_shift"].values, truth["charge"]):
        print(f"charge at {t:g} s (eV)\t{-shift:.3f}\t-\t{true:.3f}")  # correction applied = -charge
    return result


if __name__ == "__main__":
    main()
