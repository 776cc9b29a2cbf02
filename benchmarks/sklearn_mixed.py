"""The script a user would write for a mixed table (numbers with missing cells, text columns) instead of
the pipeline: pandas + scikit-learn's ColumnTransformer, the benchmark's models and settings.

python benchmarks/sklearn_mixed.py CSV  ->  prints {"linear": test_mse, "mlp": test_mse} as JSON

Numbers: median imputation with missing indicators, then standardization; text: missing as a category,
then OneHotEncoder(min_frequency=5, handle_unknown="infrequent_if_exist") (sparse, as it comes). Then
LinearRegression and MLPRegressor (hidden (10,), tanh, batch 1024, 5 epochs, lr 0.01), as
benchmarks/sklearn_baseline.py fits them.
"""

import argparse
import json
import warnings

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("csv")
parser.add_argument("--target", default="y")
args = parser.parse_args()

frame = pd.read_csv(args.csv)
frame = frame[frame[args.target].notna()]
X, y = frame.drop(columns=args.target), frame[args.target].to_numpy()
del frame
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
numbers = [c for c in X if pd.api.types.is_numeric_dtype(X[c])]
text = [c for c in X if c not in numbers]
prep = ColumnTransformer([
    ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numbers),
    ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"),
                          OneHotEncoder(min_frequency=5, handle_unknown="infrequent_if_exist")), text),
])  # fmt: skip
X_train = prep.fit_transform(X_train)
X_test = prep.transform(X_test)
linear = LinearRegression().fit(X_train, y_train)
mlp = MLPRegressor(hidden_layer_sizes=(10,), activation="tanh", batch_size=1024, max_iter=5, learning_rate_init=0.01,
                   random_state=0)  # fmt: skip
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # 5 epochs is the benchmark's setting
    mlp.fit(X_train, y_train)
print(json.dumps({"linear": float(mean_squared_error(y_test, linear.predict(X_test))),
                  "mlp": float(mean_squared_error(y_test, mlp.predict(X_test)))}))  # fmt: skip
