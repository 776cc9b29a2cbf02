import numpy as np
import pytest

from stages import columns
from stages.errors import UserError


def cells(*values: str) -> np.ndarray:
    return np.array(values, dtype=str)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (("1", "2.5", "-3e2", "NA", ""), "numeric"),
        (("yes", "No", "Y", "n", "TRUE", "f", "null"), "boolean"),
        (("2024-01-31", "1970-01-01T12:00:00", "2020-02-29 08:30", "N/A"), "date"),
        (("Adelie", "Gentoo", "1", "NA"), "categorical"),
        (("NA", "", "None"), "numeric"),  # nothing present: numeric, imputed (or refused when all training rows miss)
    ],
)
def test_types_are_inferred_from_the_present_cells(values, kind):
    column = cells(*values)
    assert columns.infer_type(column, columns.missing_mask(column)) == (kind, None)


def test_a_column_almost_all_numbers_names_its_first_stray_cell_instead_of_becoming_categorical():
    column = cells(*[str(i) for i in range(20)], "1,234", "12%")
    assert columns.infer_type(column, columns.missing_mask(column)) == ("numeric", 20)
    words = cells(*[str(i) for i in range(5)], "a", "b")  # 5 of 7 numbers: categories
    assert columns.infer_type(words, columns.missing_mask(words)) == ("categorical", None)


def test_missing_cells_are_pandas_spellings_and_empty():
    column = cells("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "<NA>", "#N/A", "0", "na?", "none")
    assert columns.missing_mask(column).tolist() == [True] * 10 + [False] * 3


def test_dates_become_days_since_1970_year_month_and_weekday():
    parts = columns.as_dates(cells("1970-01-02", "2024-02-29T12:00:00Z", "2024-02-29T14:00:00+02:00", "soon"))
    assert parts[0].tolist() == [1.0, 1970, 1, 4]  # a Friday
    assert parts[1].tolist() == parts[2].tolist() == [19782.5, 2024, 2, 3]  # the same instant in UTC, a Thursday
    assert np.isnan(parts[3]).all()


def fitted(name, kind, values, train=None, min_frequency=2):
    column = cells(*values)
    rows = np.arange(len(column)) if train is None else np.asarray(train)
    return columns.fit_column(name, kind, column, columns.missing_mask(column), rows, min_frequency, "t.csv")


def test_numbers_are_imputed_with_the_training_median_and_get_an_indicator_only_if_training_missed_some():
    column = fitted("x", "numeric", ["1", "NA", "3", "10", "NA"], train=[0, 1, 2, 3])
    assert column.medians == [3.0] and column.indicator and column.features() == ["x", "x (missing)"]
    new = cells("NA", "7")
    encoded, unseen = column.encode(new, columns.missing_mask(new), "new.csv")
    assert encoded.tolist() == [[3.0, 1.0], [7.0, 0.0]] and unseen is None
    complete = fitted("x", "numeric", ["1", "2", "NA"], train=[0, 1])
    assert not complete.indicator and complete.features() == ["x"]
    gap = cells("NA")
    assert complete.encode(gap, columns.missing_mask(gap), "new.csv")[0].tolist() == [[1.5]]


def test_categories_are_one_hot_sorted_with_rare_and_unseen_ones_as_infrequent():
    column = fitted("c", "categorical", ["b", "a", "b", "a", "z", "NA", "NA"], min_frequency=2)
    assert column.categories == ["(missing)", "a", "b"] and column.rare == ["z"]
    assert column.features() == ["c=(missing)", "c=a", "c=b", "c=(infrequent)"]
    new = cells("a", "z", "never", "")
    encoded, unseen = column.encode(new, columns.missing_mask(new), "new.csv")
    assert encoded.tolist() == [[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]]
    assert unseen.tolist() == [False, False, True, False]  # z was seen in training (rarely), 'never' was not
    plain = fitted("c", "categorical", ["a", "a", "b", "b"])
    encoded, unseen = plain.encode(cells("c"), np.array([False]), "new.csv")
    assert plain.features() == ["c=a", "c=b"] and encoded.tolist() == [[0, 0]] and unseen.tolist() == [True]


def test_a_transform_is_plain_data_and_encodes_the_same_after_a_round_trip():
    table = {"n": cells("1", "", "3", "4"), "b": cells("yes", "no", "no", "yes"), "c": cells("u", "v", "u", "v")}
    kinds = {"n": "numeric", "b": "boolean", "c": "categorical"}
    transform = columns.Transform([fitted(name, kind, list(table[name])) for name, kind in kinds.items()])
    again = columns.Transform.from_dict(transform.to_dict())
    X, unseen = transform.encode(table, "t.csv")
    assert again.features() == transform.features() == ["n", "n (missing)", "b", "c=u", "c=v"]
    assert np.array_equal(again.encode(table, "t.csv")[0], X) and unseen == 0
    assert X[1].tolist() == [3.0, 1.0, 0.0, 0.0, 1.0]


def test_a_cell_the_forced_type_cannot_read_is_named():
    column = columns.ColumnTransform("x", "boolean")
    with pytest.raises(UserError, match=r"t.csv: row 2, column 'x': 'maybe' is not yes/no"):
        column.values(cells("yes", "maybe"), np.array([False, False]), "t.csv")


def test_a_column_with_no_value_in_the_training_rows_is_refused():
    with pytest.raises(UserError, match="column 'x' has no value in any training row; drop it"):
        fitted("x", "numeric", ["NA", "NA", "1"], train=[0, 1])
