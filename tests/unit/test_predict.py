"""predict's writer: the input records with a prediction column, written atomically."""

from __future__ import annotations

import numpy as np
import pytest

from stages.errors import UserError
from stages.predict import prediction_texts, write_with_predictions


def test_rows_and_predictions_out_of_step_write_nothing(tmp_path):
    (tmp_path / "in.csv").write_text("x\n1\n2\n")
    with pytest.raises(UserError, match=r"in.csv: 2 records now but 3 rows read before"):
        write_with_predictions(tmp_path / "in.csv", np.zeros(3), tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == [tmp_path / "in.csv"]  # no output, no temporary file


def test_predictions_are_written_with_the_digits_of_the_models_dtype():
    values = np.array([3.000000476837158, 0.1, -2.5e-8])
    assert prediction_texts(values, "float32").tolist() == ["3.0000005", "0.1", "-2.5e-08"]
    assert prediction_texts(values, "float64").tolist() == ["3.000000476837158", "0.1", "-2.5e-08"]
