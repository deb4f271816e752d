"""MONAI bundle loading, versioning and the shipped-bundle lookup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models import default_bundle_path  # noqa: E402
from models.bundle import Preprocessing, load_bundle, write_bundle  # noqa: E402
from triallens.errors import ModelError  # noqa: E402

NETWORK = {
    "_target_": "monai.networks.nets.UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [4, 8],
    "strides": [2],
    "num_res_units": 0,
}


def _tiny_bundle(root: Path, version: str = "0.1.0") -> Path:
    from monai.bundle import ConfigParser

    torch.manual_seed(1)
    net = ConfigParser({"n": NETWORK}).get_parsed_content("n")
    prep = Preprocessing(spacing_mm=(2.0, 1.0, 1.0), roi_size=(8, 16, 16))
    meta = {"name": "tiny", "task": "tiny", "version": version}
    return write_bundle(root, NETWORK, net.state_dict(), prep, meta, "# tiny\n")


def test_write_then_load_gives_the_same_network(tmp_path):
    root = _tiny_bundle(tmp_path / "b")
    bundle = load_bundle(root)
    assert bundle.task == "tiny"
    assert bundle.semantic_version == "0.1.0"
    assert bundle.preprocessing.spacing_mm == (2.0, 1.0, 1.0)
    assert bundle.preprocessing.roi_size == (8, 16, 16)
    assert bundle.version.startswith("sha256:") and len(bundle.version) == 23
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    for key, value in bundle.network.state_dict().items():
        assert torch.equal(value, state[key])
    assert not bundle.network.training


def test_version_is_a_hash_of_weights_and_metadata(tmp_path):
    first = load_bundle(_tiny_bundle(tmp_path / "a")).version
    again = load_bundle(_tiny_bundle(tmp_path / "b")).version
    assert first == again
    bumped = load_bundle(_tiny_bundle(tmp_path / "c", version="0.2.0")).version
    assert bumped != first
    root = _tiny_bundle(tmp_path / "d")
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    key = next(iter(state))
    state[key] = state[key] + 1e-3
    torch.save(state, root / "models" / "model.pt")
    assert load_bundle(root).version != first


def test_bundle_without_triallens_section_uses_metadata(tmp_path):
    root = _tiny_bundle(tmp_path / "b")
    config_file = root / "configs" / "inference.json"
    config = json.loads(config_file.read_text())
    del config["triallens"]
    config_file.write_text(json.dumps(config))
    meta_file = root / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["network_data_format"] = {
        "inputs": {"image": {"spatial_shape": [64, 48, 16], "value_range": [-50, 150]}},
        "outputs": {"pred": {"channel_def": {"0": "background", "1": "spleen"}}},
    }
    meta_file.write_text(json.dumps(meta))
    bundle = load_bundle(root)
    assert bundle.preprocessing.roi_size == (16, 48, 64)
    assert (bundle.preprocessing.a_min, bundle.preprocessing.a_max) == (-50, 150)
    assert bundle.preprocessing.labels == {0: "background", 1: "spleen"}


def test_incomplete_or_broken_bundles_raise(tmp_path):
    with pytest.raises(ModelError, match="not a complete MONAI bundle"):
        load_bundle(tmp_path)
    root = _tiny_bundle(tmp_path / "b")
    config_file = root / "configs" / "inference.json"
    config = json.loads(config_file.read_text())
    config["network_def"]["channels"] = [8, 16]  # weights no longer fit
    config_file.write_text(json.dumps(config))
    with pytest.raises(ModelError, match="cannot build"):
        load_bundle(root)


def test_default_bundle_path():
    with pytest.raises(ModelError, match="unknown model task"):
        default_bundle_path("nope")
    try:
        path = default_bundle_path("recist_ct")
    except ModelError:
        pytest.skip("the recist_ct bundle has not been trained in this checkout")
    assert (path / "models" / "model.pt").is_file()
    card = (path / "docs" / "README.md").read_text()
    assert "Not for clinical use" in card
    meta = json.loads((path / "configs" / "metadata.json").read_text())
    for key in ("version", "task", "intended_use", "data_source", "metrics"):
        assert meta[key]
    assert (path / "models" / "model.pt").stat().st_size < 8 * 2**20
    assert np.isfinite(meta["metrics"]["diameter_mae_mm"])
