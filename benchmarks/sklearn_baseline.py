"""The script a user would write instead of the pipeline: pandas + scikit-learn, same job, same settings.

python benchmarks/sklearn_baseline.py CSV [--float32] [--mlp-seeds 1 2]
    ->  prints {"linear": test_mse, "mlp": test_mse, "mlp_losses": [...]} as JSON; with --mlp-seeds, only
        the MLP, once per random_state given: {"mlp": [test_mse, ...], "mlp_losses": [[...], ...]} (how much
        the MLP's result depends on its draw). mlp_losses: each epoch's training loss as the pipeline logs
        it, the mean squared error over the epoch's batches (2 x MLPRegressor's loss_curve_, which is half
        the squared error plus its alpha = 1e-4 penalty)

--float32 reads the table as float32, as a user must at 10^8 rows on a 24 GiB machine (in float64 the
frame, its array and the split copies need about 20 GiB).
"""

import argparse
import json
import warnings

import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor

parser = argparse.ArgumentParser()
parser.add_argument("csv")
parser.add_argument("--float32", action="store_true")
parser.add_argument("--mlp-seeds", type=int, nargs="+")
args = parser.parse_args()

frame = pd.read_csv(args.csv, dtype="float32" if args.float32 else None)
X, y = frame.drop(columns="y").to_numpy(), frame["y"].to_numpy()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)


def mlp_fit(seed: int) -> tuple[float, list[float]]:
    mlp = MLPRegressor(
        hidden_layer_sizes=(10,), activation="tanh", batch_size=1024, max_iter=5, learning_rate_init=0.01,
        random_state=seed,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 5 epochs is the benchmark's setting
        mlp.fit(X_train, y_train)
    return float(mean_squared_error(y_test, mlp.predict(X_test))), [2 * float(loss) for loss in mlp.loss_curve_]


if args.mlp_seeds:
    fits = [mlp_fit(seed) for seed in args.mlp_seeds]
    print(json.dumps({"mlp": [mse for mse, _ in fits], "mlp_losses": [losses for _, losses in fits]}))
else:
    linear = LinearRegression().fit(X_train, y_train)
    mse, losses = mlp_fit(0)
    print(json.dumps({"linear": float(mean_squared_error(y_test, linear.predict(X_test))), "mlp": mse,
                      "mlp_losses": losses}))  # fmt: skip
