"""dvc.yaml against the code: each stage's code deps are exactly the stages/ files its module imports
(directly or through other project modules, the package's __init__ included), and its outputs are the
paths stages/paths.py defines."""

from __future__ import annotations

import re

import pytest
import yaml

from stages import paths
from tests.helpers import ROOT, import_closure

DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGE_COMMAND = re.compile(r"python -m (stages\.\w+)")


def stage_definitions() -> dict[str, dict]:
    """Each stage of dvc.yaml, a foreach stage once (with ${key} left in its paths)."""
    return {name: stage.get("do", stage) for name, stage in DVC_YAML["stages"].items()}


def declared_paths(stage: dict, *sections: str) -> set[str]:
    return {
        next(iter(entry)) if isinstance(entry, dict) else entry
        for section in sections
        for entry in stage.get(section, [])
    }


@pytest.mark.parametrize("name", sorted(DVC_YAML["stages"]))
def test_a_stages_code_deps_are_exactly_the_files_its_module_imports(name):
    stage = stage_definitions()[name]
    module = STAGE_COMMAND.match(stage["cmd"]).group(1)
    code_deps = {dep for dep in declared_paths(stage, "deps") if dep.startswith("stages/")}
    closure = import_closure(module)
    assert code_deps == closure, f"dvc.yaml {name}: missing {closure - code_deps}, extra {code_deps - closure}"


def test_only_prepare_depends_on_the_csv_reader():
    readers = {name for name, stage in stage_definitions().items() if "stages/csv_input.py" in stage["deps"]}
    assert readers == {"prepare"}


def test_the_closure_follows_imports_inside_functions_and_through_other_modules():
    closure = import_closure("stages.train")  # torch and the models are imported inside main
    assert {"stages/__init__.py", "stages/models.py", "stages/training.py", "stages/prepared.py"} <= closure
    assert "stages/csv_input.py" not in closure and "stages/plot.py" not in closure


def outputs_of(name: str, model: str = "NAME") -> set[str]:
    stage = stage_definitions()[name]
    paths_ = declared_paths(stage, "outs", "metrics", "plots")
    return {path.replace("${key}", model).replace("${item}", model) for path in paths_}


def test_dvc_yaml_declares_the_outputs_stages_paths_defines():
    assert outputs_of("prepare") == {str(paths.PREPARED_DIR)}
    assert outputs_of("train") == {
        str(f("NAME"))
        for f in (paths.model_file, paths.model_card, paths.model_summary, paths.predictions_file,
                  paths.live_summary, paths.live_plots)
    }  # fmt: skip
    assert outputs_of("export") == {str(paths.onnx_file("NAME")), str(paths.serving_file("NAME"))}
    assert outputs_of("evaluate") == {str(paths.metrics_file("NAME")), str(paths.predicted_file("NAME"))}
    figures = (paths.FIT_FIGURE, paths.PREDICTED_FIGURE, paths.RESIDUALS_FIGURE, paths.IMPORTANCE_FIGURE)
    assert outputs_of("plot") == {*map(str, figures), str(paths.LOSSES_FILE)}
    # what plot reads of each model is in git: metrics, evaluate's sample, DVCLive's log; no cached folder
    plot_deps = set(stage_definitions()["plot"]["deps"])
    assert {str(paths.METRICS_DIR), str(paths.PREDICTED_DIR), str(paths.LIVE_DIR)} <= plot_deps
    assert str(paths.PREDICTIONS_DIR) not in plot_deps and str(paths.MODELS_DIR) not in plot_deps


def test_every_stage_can_be_restored_from_the_run_cache():
    # DVC's run-cache skips a stage with a persist output, and does not record a run of a stage with an
    # uncached output that is neither a metric nor a plot (dvc/stage/cache.py, Stage.run).
    for name, stage in stage_definitions().items():
        for section in ("outs", "metrics", "plots"):
            for entry in stage.get(section, []):
                options = next(iter(entry.values())) if isinstance(entry, dict) else {}
                assert not options.get("persist"), f"{name}: {entry}"
                assert section != "outs" or options.get("cache", True), f"{name}: {entry} is kept in git"
