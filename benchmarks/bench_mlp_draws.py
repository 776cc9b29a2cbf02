"""The MLP's test MSE over many seeds, ours against scikit-learn's, on the same rows.

    python benchmarks/bench_mlp_draws.py [CSV | --rows 1000000 [--plateau-seed 20] [--tables DIR]]
                                         [--seeds 30] [--epochs 5]

Without CSV it writes (or finds in --tables) bench_scale.py's benchmark table of --rows rows, or with
--plateau-seed its plateau table.

At 10^6 rows and 5 epochs (3,900 steps of 1024 rows) an MLP [10] tanh is still on its way down, and where
it is depends on the draw by 2x or more: the same seed on another split of the same table gave 0.042 and
0.082. A median of 3 or 9 runs a side cannot tell 1.1x; this script runs --seeds draws a side in one
process, on scikit-learn's split (train_test_split, test_size 0.2, random_state 0) for both, and prints
each draw, the medians and quartiles, and a bootstrap interval of the ratio of the medians.

Ours is what train@mlp runs (models.architecture and build_model seeded by torch.manual_seed(seed), then
training.fit_adam: the Adam trainer, init auto); scikit-learn's is MLPRegressor with the same
layer, activation, batch size, learning rate and epochs (as benchmarks/sklearn_baseline.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import table  # noqa: E402

from stages import models, training  # noqa: E402
from stages.params import ModelSpec  # noqa: E402


def ours(spec: ModelSpec, seed: int, X_train, y_train, X_test, y_test) -> float:
    torch.manual_seed(seed)
    model = models.build_model(models.architecture(spec, X_train.shape[1], "float32"))
    training.fit_adam(model, X_train, y_train, spec, seed)
    with torch.no_grad():
        return float(((model(X_test).squeeze(-1).double() - y_test) ** 2).mean())


def scikit_learn(spec: ModelSpec, seed: int, X_train, y_train, X_test, y_test) -> float:
    mlp = MLPRegressor(
        hidden_layer_sizes=spec.hidden, activation=spec.activation, batch_size=spec.batch_size,
        max_iter=spec.epochs, learning_rate_init=spec.lr, random_state=seed,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(X_train, y_train)
    return float(((mlp.predict(X_test) - y_test) ** 2).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path, nargs="?", help="a table of bench_scale.py's kind: features, then y")
    parser.add_argument("--rows", type=int, default=1_000_000, help="without CSV: the generated table's rows")
    parser.add_argument("--plateau-seed", type=int, help="without CSV: the plateau table of this seed")
    parser.add_argument("--tables", type=Path, help="keep the generated table in this folder (default: temporary)")
    parser.add_argument("--seeds", type=int, default=30, help="draws a side (seeds 0 .. N-1)")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core each, as the two sides run in turn on a 2-core machine
    with tempfile.TemporaryDirectory(dir=args.tables) as tmp:
        if args.csv is None:
            args.csv = table(args.tables or Path(tmp), args.rows, args.plateau_seed)
        frame = pd.read_csv(args.csv)
    X, y = frame.drop(columns="y").to_numpy(), frame["y"].to_numpy()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    ours_rows = (torch.from_numpy(X_train.astype(np.float32)), torch.from_numpy(y_train.astype(np.float32)),
                 torch.from_numpy(X_test.astype(np.float32)), torch.from_numpy(y_test))  # fmt: skip
    spec = ModelSpec(name="mlp", kind="mlp", lr=0.01, epochs=args.epochs, hidden=(10,), activation="tanh",
                     batch_size=1024)  # fmt: skip
    mine, theirs = [], []
    for seed in range(args.seeds):
        started = time.perf_counter()
        mine.append(ours(spec, seed, *ours_rows))
        theirs.append(scikit_learn(spec, seed, X_train, y_train, X_test, y_test))
        print(f"seed {seed:3d}: test MSE ours {mine[-1]:.5f}, scikit-learn {theirs[-1]:.5f} "
              f"({time.perf_counter() - started:.1f} s)", flush=True)  # fmt: skip

    a, b = np.array(mine), np.array(theirs)
    rng = np.random.default_rng(0)
    boot = [np.median(rng.choice(a, len(a))) / np.median(rng.choice(b, len(b))) for _ in range(2000)]
    low, high = np.percentile(boot, [5, 95])
    print(f"\n{args.csv.name}, {len(X_train):,} training rows, {args.epochs} epochs, {args.seeds} seeds a side:")
    for name, values in (("ours", a), ("scikit-learn", b)):
        q1, q2, q3 = np.percentile(values, [25, 50, 75])
        print(f"  {name:>12}: median {q2:.5f} (quartiles {q1:.5f} .. {q3:.5f}), min {values.min():.5f}")
    print(f"  ratio of the medians {np.median(a) / np.median(b):.3f} (bootstrap 90% interval {low:.3f} .. {high:.3f})")


if __name__ == "__main__":
    main()
