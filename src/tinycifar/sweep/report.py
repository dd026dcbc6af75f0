"""What a sweep leaves in OUT: the table of trials (``trials.csv``, also printed), Optuna's
optimisation history and parameter importances (``history.png``, ``importances.png``) and
the best configuration as a recipe, ``best.toml``, that ``tinycifar train --recipe`` takes.

Each file is written whole or not at all (:mod:`tinycifar.atomic`): a sweep is often
stopped, and a half-written best.toml would train something no trial ran.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from tinycifar.atomic import write_text
from tinycifar.sweep.optuna_extra import need_optuna
from tinycifar.sweep.ranges import decode
from tinycifar.sweep.space import Space, trial_values


def report(study: Any, space: Space, out: Path) -> None:
    """The trial table, the plots and the best recipe."""
    need_optuna()
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    rows = _rows(trials)
    _write_table(rows, out / "trials.csv")
    _print_table(rows)
    if not any(t.state == TrialState.COMPLETE for t in trials):
        return  # the caller says so, as an error
    _plot(study, out)
    best = study.best_trial
    write_best(best, space, out / "best.toml")
    print(
        f"best: trial {best.number}, val accuracy {best.value:.2%}; wrote {out / 'best.toml'}, "
        f"{out / 'trials.csv'}, plots in {out}"
    )


def _rows(trials: list[Any]) -> list[dict[str, Any]]:
    names = sorted({k for t in trials for k in t.params})
    return [
        {
            "trial": t.number,
            "state": t.state.name.lower(),
            "val_acc": None if t.value is None else round(t.value, 4),
            "epochs_run": len(t.intermediate_values),
            "params": t.user_attrs.get("params"),
            **{n: t.params.get(n) for n in names},
            "note": t.user_attrs.get("rejected")
            or t.user_attrs.get("failed_because")
            or (f"retry of {t.user_attrs['retry_of']}" if "retry_of" in t.user_attrs else ""),
        }
        for t in trials
    ]


def _write_table(rows: list[dict[str, Any]], path: Path) -> None:
    text = io.StringIO(newline="")  # the csv module ends its rows itself
    w = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["trial"])
    w.writeheader()
    w.writerows(rows)
    write_text(path, text.getvalue())


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = list(rows[0]) if rows else []
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print(
            "| "
            + " | ".join("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values())
            + " |"
        )


def _plot(study: Any, out: Path) -> None:
    optuna = need_optuna()
    from tinycifar.figures import save_figure

    for name, plot in (
        ("history", optuna.visualization.matplotlib.plot_optimization_history),
        ("importances", optuna.visualization.matplotlib.plot_param_importances),
    ):
        try:
            fig = plot(study).figure
            fig.set_size_inches(8, 4.5)
            fig.tight_layout()  # Optuna's layout clips long parameter names
            save_figure(fig, out / f"{name}.png")
        except (ValueError, RuntimeError) as e:  # importances need 2+ complete trials and a varied param
            print(f"no {name}.png: {e}")


def write_best(best: Any, space: Space, path: Path) -> None:
    """The best trial's recipe as a TOML file for ``tinycifar train --recipe``."""
    from tinycifar.recipe import load_recipe, recipe_from_dict, recipe_to_toml

    model = best.params.get("model", space.model)
    model_args = {k.removeprefix("model."): decode(v) for k, v in best.params.items() if k.startswith("model.")}
    drawn = {k: v for k, v in best.params.items() if k != "model" and not k.startswith("model.")}
    # As the trial built it (warm-up clamped), but evaluated as often as the base recipe says.
    recipe = recipe_from_dict(trial_values(vars(load_recipe(space.recipe)), space.fixed, drawn), str(path))
    args = f" {json.dumps(model_args)}" if model_args else ""
    flag = f" --model-args '{json.dumps(model_args)}'" if model_args else ""
    lines = [
        "# tinycifar sweep: the best trial's recipe",
        f"# trial {best.number}, validation accuracy {best.value:.4f}, model {model}{args}",
        f"# train it: tinycifar train --model {model} --recipe {path.name}{flag}",
        "",
    ]
    write_text(path, "\n".join(lines) + "\n" + recipe_to_toml(recipe))
