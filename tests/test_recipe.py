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


def test_freeze_lists_each_stages_epochs_and_scales_with_the_run():
    recipe = Recipe(epochs=14, freeze="5,9")
    assert recipe.freeze_epochs == (5, 9)
    assert [recipe.frozen(e) for e in (0, 4, 5, 8, 9, 13)] == [(False, s) for s in (0, 0, 1, 1, 2, 2)]  # from 0
    assert [Recipe(epochs=14, whiten_bias_epochs=3).frozen(e) for e in (2, 3)] == [(False, 0), (True, 0)]
    assert recipe.scaled_to(7).freeze == "2,4"  # round(2.5) is 2: Python rounds half to even
    assert recipe.scaled_to(28).freeze == "10,18"
    assert Recipe(epochs=14).scaled_to(7).freeze == "" and Recipe().frozen(100) == (False, 0)
    assert Recipe(epochs=14, freeze=" 5 , 9 ").freeze == "5,9"  # one spelling: a resume compares recipes
    p = argparse.ArgumentParser()
    add_recipe_flags(p)
    assert apply_overrides(load_recipe("fast"), p.parse_args(["--freeze", "5,9"])).freeze == "5,9"


@pytest.mark.parametrize(
    "freeze, message",
    [
        ("5;9", "epochs separated by commas"),
        ("five", "epochs separated by commas"),
        ("²", "epochs separated by commas"),  # a digit to str.isdigit, not to int()
        ("-1", "epochs separated by commas"),
        ("9,5", "never decrease"),
        ("0", r"in \[1, epochs\]"),
        ("15", r"in \[1, epochs\]"),
        ("1" * 40, "epochs separated by commas"),  # not a 40-digit int parsed and compared
    ],
)
def test_a_bad_freeze_is_refused_with_the_form_it_takes(freeze, message):
    with pytest.raises(TinyCifarError, match=message):
        Recipe(epochs=14, freeze=freeze)


def test_scaled_to_sets_only_the_length_fields_and_with_length_of_copies_them_all():
    from tinycifar.recipe import LENGTH_FIELDS

    recipe = Recipe(epochs=14, warmup_epochs=2.0, whiten_bias_epochs=3, freeze="5,9")
    short = recipe.scaled_to(7)
    changed = {f.name for f in dataclasses.fields(Recipe) if getattr(short, f.name) != getattr(recipe, f.name)}
    assert changed == set(LENGTH_FIELDS)  # every field it scales is listed, and only those
    assert recipe.with_length_of(short) == short
