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


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epochs": -1}, "epochs must be at least 1"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"epochs": "ten"}, "epochs must be int"),
        ({"flip": 1}, "flip must be bool"),
        ({"learning_rate": 0.1}, "unknown key(s) learning_rate"),
    ],
)
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


def test_recipe_refuses_two_kinds_of_averaging_and_bad_new_fields():
    with pytest.raises(TinyCifarError, match="ema_decay and lookahead"):
        Recipe(ema_decay=0.99, lookahead=5)
    with pytest.raises(TinyCifarError, match="eval_every must be at least 1"):
        Recipe(eval_every=0)
    with pytest.raises(TinyCifarError, match="bias_lr_scale must be positive"):
        Recipe(bias_lr_scale=0.0)


def test_long_recipe_is_the_one_sepnet_g31s_shipped_weights_trained_with():
    """long.toml keeps airbench's values (the fast recipe's until 2026-12-05) for 37 epochs,
    the recipe of sepnet_g31's seeds; the fast recipe moved on without it."""
    import json
    from pathlib import Path

    from tinycifar.runconfig import RunConfig

    run = Path(__file__).parents[1] / "src" / "tinycifar" / "weights" / "sepnet_g31.run.json"
    assert load_recipe("long") == RunConfig.from_dict(json.loads(run.read_text())["config"]).recipe
    assert (load_recipe("long").epochs, load_recipe("long").lr) == (37, 0.375)


def test_packaged_fast_recipe_loads():
    r = load_recipe("fast")
    assert r.alt_flip and r.lookahead and r.epochs < Recipe().epochs


def test_each_model_trains_with_its_own_packaged_recipe():
    from tinycifar.models import list_models, model_recipe
    from tinycifar.recipe import RECIPE_NAMES

    assert model_recipe("fastnet") == "fast" and model_recipe("tinynet") == "classic"
    assert model_recipe("sepnet_g31") == "long"
    assert all(model_recipe(m) in RECIPE_NAMES for m in list_models())


def test_a_recipe_scaled_to_another_length_keeps_the_shares_of_warm_up_and_the_stem_bias():
    recipe = Recipe(epochs=12, warmup_epochs=2.4, whiten_bias_epochs=3)
    short = recipe.scaled_to(4)
    assert (short.epochs, short.warmup_epochs, short.whiten_bias_epochs) == (4, pytest.approx(0.8), 1)
    assert recipe.scaled_to(1).whiten_bias_epochs == 1  # trained at least the epoch it had
    long = recipe.scaled_to(24)
    assert (long.warmup_epochs, long.whiten_bias_epochs) == (pytest.approx(4.8), 6)
    assert Recipe(epochs=12).scaled_to(4).whiten_bias_epochs == 0  # never frozen stays never frozen
    assert Recipe(epochs=2, warmup_epochs=2).scaled_to(1).warmup_epochs == 1  # never longer than the run
