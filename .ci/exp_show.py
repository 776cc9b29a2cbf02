"""`make exp-show`: the experiments table with each model's MSE per split (train, validation, test) and every
parameter whose value differs among the experiments listed, nested keys flattened (`models.mlp.hidden`).

    python .ci/exp_show.py [dvc exp show options, e.g. -A or --sort-by ...]

`dvc exp show --only-changed` cannot be combined with `--keep` (what --keep names is shown whether it changed
or not), so the changed parameters are found here from `dvc exp show --json`, then named in --keep.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

MSE_COLUMNS = r"(.*:)?(train|validation|test)\.mse"


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """{"models.mlp.hidden": "[10]", ...}: each leaf of nested dicts under its dotted key, as JSON text."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
    return out


def revisions(table: list) -> list[dict]:
    """Every row's data: each baseline and each of its experiments."""
    rows = []
    for entry in table:
        rows.append(entry.get("data") or {})
        for group in entry.get("experiments") or []:
            rows += [rev.get("data") or {} for rev in group.get("revs", [])]
    return rows


def changed_params(rows: list[dict]) -> list[str]:
    """Parameters (every params file) whose value differs among the rows, or is set in some rows only."""
    tables = []
    for data in rows:
        params = {}
        for source in (data.get("params") or {}).values():
            params |= flatten(source.get("data") or {})
        tables.append(params)
    keys = set().union(*tables)
    return sorted(key for key in keys if len({params.get(key, "<unset>") for params in tables}) > 1)


def main(argv: list[str]) -> int:
    shown = subprocess.run(["dvc", "exp", "show", "--json", *argv], text=True, capture_output=True)
    if shown.returncode != 0:
        print(shown.stderr.strip(), file=sys.stderr)
        return shown.returncode
    changed = changed_params(revisions(json.loads(shown.stdout)))
    keep = "|".join(["Experiment", MSE_COLUMNS, *(re.escape(key) for key in changed)])
    return subprocess.run(
        ["dvc", "exp", "show", "--md", "--no-pager", "--drop", ".*", "--keep", keep, *argv]
    ).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
