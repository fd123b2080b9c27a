import json

import numpy as np
import pytest

from pinnprob.cli import main


def test_demo_writes_figures(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--samples", "200"]) == 0
    for name in ("fields.png", "covariance.png"):
        f = tmp_path / name
        assert f.is_file() and f.stat().st_size > 10_000


def test_train_from_config_and_resume(tmp_path, capsys):
    cfg = {"family": "spectral", "modes_per_dim": 8, "modes_per_step": 16, "width": 8, "depth": 1,
           "steps": 6, "batch_size": 2, "train_range": [[0.2, 0.5], [1.0, 2.0]]}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out, ck = tmp_path / "p.eqx", tmp_path / "p.ckpt"
    assert main(["train", str(tmp_path / "c.json"), "--out", str(out), "--checkpoint", str(ck), "--quiet"]) == 0
    assert out.is_file() and ck.is_file()
    assert main(["train", str(tmp_path / "c.json"), "--out", str(out), "--checkpoint", str(ck), "--resume",
                 "--quiet"]) == 0
    assert "saved" in capsys.readouterr().out


@pytest.mark.parametrize("content, match", [(None, "no such config"), ("{not json", "bad config"),
                                            ('{"colour": 1}', "unknown configuration keys")])
def test_train_bad_config_is_one_clear_line(tmp_path, capsys, content, match):
    path = tmp_path / "c.json"
    if content is not None:
        path.write_text(content)
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pinnprob: error: ") and match in err and err.count("\n") == 1


# --- pinnprob fit: user errors are one line, exit status 2, before any sampling ------------------

def _csv(tmp_path, n=30, name="data.csv", seed=0):
    """A small table: coordinates in metres, a positive value, a covariate."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, 1000, n), rng.uniform(0, 800, n)
    dist = rng.uniform(0, 1, n)
    zinc = np.exp(5 + np.sin(x / 200) - dist + 0.1 * rng.normal(size=n))
    lines = ["east,north,zinc,dist"] + [f"{a:.3f},{b:.3f},{c:.4f},{d:.4f}" for a, b, c, d in zip(x, y, zinc, dist)]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _error_line(capsys, argv):
    """Run the CLI, check it failed with exactly one stderr line, and return that line."""
    assert main(argv) == 2
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1, cap.err
    assert lines[0].startswith("pinnprob: error: ")
    assert "Traceback" not in cap.err
    return lines[0]


@pytest.fixture
def no_sampling(monkeypatch):
    """Make any call to pinnprob.fit fail the test: errors must come before sampling."""
    import pinnprob

    def boom(*a, **k):
        raise AssertionError("pinnprob.fit was called")

    monkeypatch.setattr(pinnprob, "fit", boom)


COLS = ["--x", "east", "--y", "north", "--value", "zinc", "--quiet"]


def test_fit_missing_column_suggests_closest(tmp_path, capsys, no_sampling):
    path = _csv(tmp_path)
    line = _error_line(capsys, ["fit", str(path), "--x", "east", "--y", "nort", "--value", "zinc"])
    assert "'nort'" in line and "did you mean 'north'" in line and "'east', 'north', 'zinc', 'dist'" in line
    line = _error_line(capsys, ["fit", str(path), *COLS, "--covariate", "Dist"])
    assert "covariate column 'Dist'" in line and "did you mean 'dist'" in line


def test_fit_non_numeric_value_names_column_and_row(tmp_path, capsys, no_sampling):
    path = _csv(tmp_path)
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace(lines[4].split(",")[2], "n/a?")  # data row 4 is line 5
    path.write_text("\n".join(lines))
    line = _error_line(capsys, ["fit", str(path), *COLS])
    assert "column 'zinc'" in line and "'n/a?'" in line and "data row 4" in line and "line 5" in line


def test_fit_nan_coordinates(tmp_path, capsys, no_sampling):
    path = _csv(tmp_path)
    lines = path.read_text().splitlines()
    parts = lines[3].split(",")
    lines[3] = ",".join([parts[0], "", *parts[2:]])
    path.write_text("\n".join(lines))
    line = _error_line(capsys, ["fit", str(path), *COLS])
    assert "column 'north'" in line and "NaN coordinates" in line and "data row(s) 3" in line


def test_fit_too_few_sites(tmp_path, capsys, no_sampling):
    path = _csv(tmp_path, n=2)
    assert "needs at least 3" in _error_line(capsys, ["fit", str(path), *COLS])


@pytest.mark.parametrize("content, match", [(None, "no such file"), (b"", "is empty"),
                                            (b"\xff\xfe\x00garbage\n", "could not read"),
                                            (b"east;north;zinc\n1;2;3\n", "--sep ';'")])
def test_fit_unreadable_file(tmp_path, capsys, no_sampling, content, match):
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_bytes(content)
    assert match in _error_line(capsys, ["fit", str(path), *COLS])
    assert "is not a file" in _error_line(capsys, ["fit", str(tmp_path), *COLS])  # a folder


def test_fit_log_needs_positive_values(tmp_path, capsys, no_sampling):
    path = _csv(tmp_path)
    assert "more than one role" in _error_line(capsys, ["fit", str(path), *COLS, "--log", "--covariate", "zinc"])
    path.write_text(path.read_text().replace("east,north,zinc,dist", "east,north,dist,zinc"))  # swap names
    lines = path.read_text().splitlines()
    parts = lines[2].split(",")
    lines[2] = ",".join([*parts[:3], "-1.0"])
    path.write_text("\n".join(lines))
    line = _error_line(capsys, ["fit", str(path), *COLS, "--log"])
    assert "--log needs positive values" in line and "data row 2" in line


def test_fit_prior_from_another_version(tmp_path, capsys, no_sampling):
    from pinnprob.api import DEFAULT_CONFIG_FILE

    shipped = DEFAULT_CONFIG_FILE.with_suffix(".eqx").read_bytes()
    n = int.from_bytes(shipped[9:17], "little")
    header = json.loads(shipped[17:17 + n])
    header["format"] = 99
    hb = json.dumps(header).encode()
    (tmp_path / "old.eqx").write_bytes(shipped[:9] + len(hb).to_bytes(8, "little") + hb + shipped[17 + n:])
    line = _error_line(capsys, ["fit", str(_csv(tmp_path)), *COLS, "--prior", str(tmp_path / "old.eqx")])
    assert "prior format 99" in line and "Retrain" in line


def test_fit_predict_csv_checked_before_fitting(tmp_path, capsys, no_sampling):
    path = _csv(tmp_path)
    far = tmp_path / "new.csv"
    far.write_text("east,north\n500,400\n90000,400\n")
    line = _error_line(capsys, ["fit", str(path), *COLS, "--predict-csv", str(far)])
    assert "outside the modelled box" in line and "data row 2" in line
    far.write_text("east,nord\n500,400\n")
    assert "did you mean 'nord'" in _error_line(capsys, ["fit", str(path), *COLS, "--predict-csv", str(far)])


def test_fit_errors_from_fit_itself_are_one_line(tmp_path, capsys):
    """Checks inside pinnprob.fit (here: a fixed ν outside the prior's range) reach the user as one line."""
    path = _csv(tmp_path)
    line = _error_line(capsys, ["fit", str(path), *COLS, "--nu", "9"])
    assert "nu = 9.0 is outside" in line


def test_fit_end_to_end_writes_outputs(tmp_path, capsys):
    """A tiny SVI fit through the command line: every output exists and the tables are finite."""
    import arviz as az
    import pandas as pd

    path = _csv(tmp_path, n=20)
    before = path.read_bytes()
    out = tmp_path / "out"
    assert main(["fit", str(path), *COLS, "--log", "--nu", "1.5", "--method", "svi", "--svi-steps", "50",
                 "--samples", "20", "--grid", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "range" in printed and "sigma" in printed
    assert path.read_bytes() == before
    for name in ("summary.csv", "predictions.csv", "map_mean.png", "map_sd.png", "trace.png", "pair.png",
                 "posterior.nc"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    pred = pd.read_csv(out / "predictions.csv")
    assert list(pred.columns) == ["east", "north", "mean", "sd", "q05", "q50", "q95", "exp_q05", "exp_q50", "exp_q95"]
    assert len(pred) == 64 and np.isfinite(pred.to_numpy()).all() and (pred["sd"] > 0).all()
    assert (pred["q05"] <= pred["q50"]).all() and (pred["q50"] <= pred["q95"]).all()
    summ = pd.read_csv(out / "summary.csv", index_col=0)
    assert set(summ.index) == {"range", "sigma", "noise", "intercept"}
    assert np.isfinite(summ["mean"]).all()
    # posterior.nc carries the prior: read back, it predicts the grid of predictions.csv again
    import pinnprob

    back = az.from_netcdf(str(out / "posterior.nc"))
    again = pinnprob.predict(back, pred[["east", "north"]].to_numpy())
    np.testing.assert_allclose(again["mean"], pred["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(again["sd"], pred["sd"], rtol=1e-5, atol=1e-6)


def test_fit_with_covariates_predicts_at_data_and_new_sites(tmp_path, capsys, monkeypatch):
    """The shell around fit/predict (fakes here, so it is fast): covariates go to fit, predictions are at
    the data sites plus the --predict-csv sites with their covariates, and the table says which is which."""
    import pandas as pd

    import pinnprob
    from pinnprob.inference.arviz_data import to_arviz

    seen = {}

    def fake_fit(X, y, **kw):
        seen["fit"] = (X.copy(), y.copy(), kw)
        rng = np.random.default_rng(0)
        post = {k: rng.uniform(0.5, 1.5, (1, 10)) for k in ("range", "sigma", "nu", "noise", "intercept")}
        post["beta"] = rng.normal(size=(1, 10, 1))
        return to_arviz({"posterior": post}, dims={"beta": ["covariate"]}, coords={"covariate": kw["covariate_names"]})

    def fake_predict(idata, X_new, covariates=None, **kw):
        seen["predict"] = (X_new.copy(), None if covariates is None else np.array(covariates))
        n = len(X_new)
        return {"mean": np.arange(n, dtype=float), "sd": np.ones(n), "quantiles": np.stack([np.zeros(n)] * 3),
                "quantile_levels": np.array([0.05, 0.5, 0.95])}

    monkeypatch.setattr(pinnprob, "fit", fake_fit)
    monkeypatch.setattr(pinnprob, "predict", fake_predict)
    path = _csv(tmp_path, n=12)
    (tmp_path / "new.csv").write_text("east,north,dist\n500,400,0.3\n600,300,0.7\n")
    out = tmp_path / "out"
    assert main(["fit", str(path), *COLS, "--covariate", "dist", "--predict-csv", str(tmp_path / "new.csv"),
                 "--nu", "1.5", "--method", "svi", "--out", str(out)]) == 0
    data = pd.read_csv(path)
    X, y, kw = seen["fit"]
    np.testing.assert_allclose(X, data[["east", "north"]].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(y, data["zinc"].to_numpy())
    np.testing.assert_allclose(kw["covariates"][:, 0], data["dist"].to_numpy())
    assert kw["nu"] == 1.5 and kw["method"] == "svi"
    Xp, Zp = seen["predict"]
    assert Xp.shape == (14, 2) and Zp.shape == (14, 1) and Zp[-1, 0] == 0.7
    pred = pd.read_csv(out / "predictions.csv")
    assert list(pred.columns) == ["east", "north", "dist", "site", "mean", "sd", "q05", "q50", "q95"]
    assert list(pred["site"]) == ["data"] * 12 + ["new"] * 2
    summ = pd.read_csv(out / "summary.csv", index_col=0)
    assert "beta[dist]" in summ.index
    for name in ("map_mean.png", "map_sd.png", "trace.png", "pair.png", "posterior.nc"):
        assert (out / name).is_file()


def test_fit_bounds_checked_before_fitting(tmp_path, capsys, no_sampling):
    path = _csv(tmp_path)  # east in [0, 1000], north in [0, 800]
    line = _error_line(capsys, ["fit", str(path), *COLS, "--bounds", "100", "1100", "-100", "900"])
    assert line.startswith("pinnprob: error: --bounds: bounds must hold every site")
    line = _error_line(capsys, ["fit", str(path), *COLS, "--bounds", "1100", "-100", "-100", "900"])
    assert "low < high" in line
    new = tmp_path / "new.csv"
    new.write_text("east,north\n500,400\n1300,400\n")  # inside the buffered box, outside the bounds
    line = _error_line(capsys, ["fit", str(path), *COLS, "--bounds", "-100", "1100", "-100", "900",
                                "--predict-csv", str(new)])
    assert "outside the modelled box (--bounds)" in line and "data row 2" in line and "widen --bounds" in line


def test_fit_bounds_go_to_fit_and_set_the_map_grid(tmp_path, capsys, monkeypatch):
    import pandas as pd

    import pinnprob
    from pinnprob.inference.arviz_data import to_arviz

    seen = {}

    def fake_fit(X, y, **kw):
        seen["fit"] = kw
        post = {k: np.ones((1, 4)) for k in ("range", "sigma", "noise", "intercept")}
        return to_arviz({"posterior": post})

    def fake_predict(idata, X_new, covariates=None, **kw):
        n = len(X_new)
        return {"mean": np.zeros(n), "sd": np.ones(n), "quantiles": np.zeros((3, n)),
                "quantile_levels": np.array([0.05, 0.5, 0.95])}

    monkeypatch.setattr(pinnprob, "fit", fake_fit)
    monkeypatch.setattr(pinnprob, "predict", fake_predict)
    out = tmp_path / "out"
    assert main(["fit", str(_csv(tmp_path)), *COLS, "--bounds", "-100", "1100", "-200", "900", "--grid", "5",
                 "--out", str(out)]) == 0
    np.testing.assert_array_equal(seen["fit"]["bounds"], [[-100, 1100], [-200, 900]])
    pred = pd.read_csv(out / "predictions.csv")
    assert (pred["east"].min(), pred["east"].max(), pred["north"].min(), pred["north"].max()) == (-100, 1100, -200, 900)


def test_fit_shipped_prior_by_name_and_nu_it_lacks(tmp_path, capsys, no_sampling):
    line = _error_line(capsys, ["fit", str(_csv(tmp_path)), *COLS, "--prior", "matern2d-nonstationary", "--nu", "1.5"])
    assert "no parameter nu" in line and "range_trend_x1" in line


def test_fit_non_gaussian_flags_checked_before_fitting(tmp_path, capsys, no_sampling):
    """--log with a count likelihood, --integration without laplace, --warm-start without NUTS: one line
    each, before any fit."""
    path = _csv(tmp_path)
    line = _error_line(capsys, ["fit", str(path), *COLS, "--log", "--likelihood", "poisson"])
    assert "--log is for a Gaussian likelihood" in line
    line = _error_line(capsys, ["fit", str(path), *COLS, "--integration", "axial"])
    assert "--integration is for --method laplace" in line
    line = _error_line(capsys, ["fit", str(path), *COLS, "--method", "laplace", "--warm-start"])
    assert "--warm-start / --no-warm-start is for spatial data with --method nuts" in line


@pytest.mark.parametrize("flag, value", [([], None), (["--warm-start"], True), (["--no-warm-start"], False)])
def test_fit_passes_warm_start_on(tmp_path, monkeypatch, flag, value):
    """--warm-start / --no-warm-start reach fit's warm_start (None without either)."""
    import pinnprob

    seen = {}

    class Stop(Exception):
        pass

    def record(*a, **k):
        seen.update(k)
        raise Stop

    monkeypatch.setattr(pinnprob, "fit", record)
    with pytest.raises(Stop):
        main(["--traceback", "fit", str(_csv(tmp_path)), *COLS, *flag])
    assert seen["warm_start"] is value


def test_fit_poisson_counts_with_laplace(tmp_path, capsys):
    """Counts through the command line: --likelihood poisson --method laplace fits, writes the
    predictions of the log rate and rate quantiles on the data's scale (exp of the log-rate ones),
    and a Bernoulli value column that is not 0/1 is one clear line."""
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 40
    x, y = rng.uniform(0, 1000, n), rng.uniform(0, 800, n)
    counts = rng.poisson(np.exp(1.0 + np.sin(x / 300)))
    path = tmp_path / "counts.csv"
    path.write_text("east,north,n\n" + "".join(f"{a:.2f},{b:.2f},{c}\n" for a, b, c in zip(x, y, counts)))
    out = tmp_path / "out"
    argv = ["fit", str(path), "--x", "east", "--y", "north", "--value", "n", "--quiet", "--nu", "1.5",
            "--likelihood", "poisson", "--method", "laplace", "--samples", "20", "--grid", "6", "--out", str(out)]
    assert main(argv) == 0
    pred = pd.read_csv(out / "predictions.csv")
    assert list(pred.columns) == ["east", "north", "mean", "sd", "q05", "q50", "q95", "rate_q05", "rate_q50",
                                  "rate_q95"]
    np.testing.assert_allclose(pred["rate_q50"], np.exp(pred["q50"]), rtol=1e-6)
    # the fitted log rate follows the counts' scale: its median over the grid is near log mean count
    assert abs(float(pred["q50"].median()) - np.log(counts.mean())) < 1.0
    summ = pd.read_csv(out / "summary.csv", index_col=0)
    assert "noise" not in summ.index and {"range", "sigma", "intercept"} <= set(summ.index)
    capsys.readouterr()
    line = _error_line(capsys, argv[:-2] + ["--out", str(tmp_path / "b")] + ["--likelihood", "bernoulli"])
    assert "bernoulli" in line.lower()
