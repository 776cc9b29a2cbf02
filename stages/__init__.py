"""DVC stages of the regression pipeline; each module runs as `python -m stages.<name>`."""

import importlib.util
import os
import sys

# MKL, torch's BLAS and LAPACK, picks its code path by CPU, and AVX-512, AVX2 and AMD machines round
# differently: a dvc.lock made on one would not reproduce on another. COMPATIBLE is the branch of its
# conditional numerical reproducibility that every x86-64 CPU runs. Set before torch is imported.
os.environ["MKL_CBWR"] = "COMPATIBLE"

# Stage commands say `python`: run outside the project's environment, that is another interpreter, and
# the first import would fail with a traceback. Say which interpreter and what to do instead.
_NEEDED = {
    "numpy": "numpy",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "ruamel": "ruamel.yaml",
    "torch": "torch",
    "matplotlib": "matplotlib",
}
_missing = [package for module, package in _NEEDED.items() if importlib.util.find_spec(module) is None]
if _missing:
    sys.stderr.write(
        f"error: {sys.executable} has no {', '.join(_missing)}: this is not the project's environment; "
        "run `make repro`, or `source .venv/bin/activate` first (after `make venv`)\n"
    )
    raise SystemExit(2)
