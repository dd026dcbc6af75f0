import argparse
import dataclasses

import pytest

from tinycifar.commands.flags import add_recipe_flags, apply_overrides
from tinycifar.errors import TinyCifarError
from tinycifar.recipe import Recipe, load_recipe, recipe_from_dict, recipe_to_toml


def test_packaged_default_recipe_equals_the_dataclass_defaults():
    # Two places state the default recipe; this keeps them from drifting apart.
    assert load_recipe("classic") == Recipe()


def test_a_recipe_built_in_code_is_validated_too():
    with pytest.raises(TinyCifarError, match="epochs must be at least 1"):
        Recipe(epochs=0)


def test_flags_override_the_recipe():
    p = argparse.ArgumentParser()
    add_recipe_flags(p)
    r = apply_overrides(load_recipe("classic"), p.parse_args(["--epochs", "3", "--no-flip", "--cutout", "16"]))
    assert (r.epochs, r.flip, r.cutout) == (3, False, 16)
    assert r.lr == load_recipe("classic").lr  # untouched fields keep the recipe value


def test_recipe_file_by_path(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text("epochs = 2\nlr = 1\n")
    r = load_recipe(f)
    assert r.epochs == 2 and r.lr == 1.0 and isinstance(r.lr, float)


@pytest.mark.parametrize("values, message", [
    ({"epochs": -1}, "epochs must be at least 1"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"lr": 0.0}, "lr must be positive"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"epochs": "ten"}, "epochs must be int"),
    ({"flip": 1}, "flip must be bool"),
    ({"learning_rate": 0.1}, "unknown key(s) learning_rate"),
])
def test_bad_recipes_are_refused_with_the_reason(values, message):
    with pytest.raises(TinyCifarError, match=message.replace("(", r"\(").replace(")", r"\)")):
        recipe_from_dict(values)


def test_missing_and_malformed_recipe_files(tmp_path):
    with pytest.raises(TinyCifarError, match="neither a packaged recipe"):
        load_recipe(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3")
    with pytest.raises(TinyCifarError, match="not valid TOML"):
        load_recipe(bad)


def test_a_recipe_written_as_toml_reads_back_the_same(tmp_path):
    recipe = dataclasses.replace(load_recipe("fast"), mixup=0.2, flip=False, epochs=112)
    path = tmp_path / "chosen.toml"
    path.write_text(recipe_to_toml(recipe))
    assert load_recipe(path) == recipe
