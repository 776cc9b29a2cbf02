"""The script a user would write instead of the pipeline: pandas + scikit-learn, same job, same settings.

python benchmarks/sklearn_baseline.py CSV [--float32]  ->  prints {"linear": test_mse, "mlp": test_mse} as JSON

--float32 reads the table as float32, as a user must at 10^8 rows on a 24 GiB machine (in float64 the
frame, its array and the split copies need about 20 GiB).
"""

import json
import sys
import warnings

import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor

frame = pd.read_csv(sys.argv[1], dtype="float32" if "--float32" in sys.argv[2:] else None)
X, y = frame.drop(columns="y").to_numpy(), frame["y"].to_numpy()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
linear = LinearRegression().fit(X_train, y_train)
mlp = MLPRegressor(
    hidden_layer_sizes=(10,), activation="tanh", batch_size=1024, max_iter=5, learning_rate_init=0.01, random_state=0
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # 5 epochs is the benchmark's setting
    mlp.fit(X_train, y_train)
print(
    json.dumps(
        {
            "linear": mean_squared_error(y_test, linear.predict(X_test)),
            "mlp": mean_squared_error(y_test, mlp.predict(X_test)),
        }
    )
)
