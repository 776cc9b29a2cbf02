from stages import lobby
from stages.params import load_params
from tests.helpers import ROOT


def test_flat_gives_dotted_keys_and_lists_for_tuples():
    assert lobby.flat("models.mlp", {"hidden": (10, 5), "early_stopping": {"patience": 3}}) == {
        "models.mlp.hidden": [10, 5],
        "models.mlp.early_stopping.patience": 3,
    }


def _print(lr=0.01, data="d", code="c"):
    return {"params": {"models.mlp.lr": lr, "train.seed": 0}, "data": data, "code": code}


def test_differences_name_each_param_with_every_nodes_value_and_the_nodes_whose_data_or_code_differ():
    assert lobby.differences({0: _print(), 1: _print(), 2: _print()}) is None
    assert lobby.differences({0: _print(), 1: _print(lr=0.02), 2: _print(data="x", code="y")}) == (
        "models.mlp.lr is 0.01 on node 0, 0.02 on node 1, 0.01 on node 2; the prepared data (data/prepared) of "
        "node 2 differs from node 0's; the code (stages/, torch) of node 2 differs from node 0's"
    )


def test_the_fingerprint_follows_the_params_the_data_and_not_the_endpoint(tmp_path):
    params = load_params(ROOT / "params.yaml")
    spec = params.model("mlp")
    (tmp_path / "y_train.npy").write_bytes(b"1234")
    first = lobby.fingerprint(params.train, spec, tmp_path)
    assert "train.distributed.rdzv_endpoint" not in first["params"]
    assert first["params"]["models.mlp.hidden"] == [10] and first["params"]["train.seed"] == 0
    assert lobby.fingerprint(params.train, spec, tmp_path) == first
    (tmp_path / "y_train.npy").write_bytes(b"1235")
    assert lobby.fingerprint(params.train, spec, tmp_path)["data"] != first["data"]
