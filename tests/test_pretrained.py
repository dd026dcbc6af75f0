"""Shipped and given weights: which model a file holds."""

from tinycifar.models import create_model


def test_the_model_comes_from_the_weights_file_when_not_given(tmp_path):
    from tinycifar.checkpoint import save_weights
    from tinycifar.models import DEFAULT_MODEL
    from tinycifar.pretrained import resolve_model_name

    named, unnamed = tmp_path / "named.safetensors", tmp_path / "unnamed.safetensors"
    save_weights(create_model("seed"), named, {"model": "seed"})
    save_weights(create_model("seed"), unnamed, {})
    assert resolve_model_name(None, named) == "seed"
    assert resolve_model_name("tinynet", named) == "tinynet"  # an explicit --model wins
    assert resolve_model_name(None, unnamed) == DEFAULT_MODEL
    assert resolve_model_name(None, None) == DEFAULT_MODEL
