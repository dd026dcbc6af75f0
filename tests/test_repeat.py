"""`tinycifar repeat`: seeds as parallel workers, resumable, mean ± std."""

import json
import os
import statistics

import pytest
from conftest import REAL_DATA, needs_real_data

from tinycifar import cli
from tinycifar.commands.repeat import train_argv
from tinycifar.errors import TinyCifarError
from tinycifar.repeat import summarize

# 200 training images, 1 epoch: a real `tinycifar train` in seconds.
QUICK = ["--model", "fastnet", "--val-split", "49800", "--epochs", "1", "--warmup-epochs", "0.5", "--batch-size", "100"]


@needs_real_data
def test_seeds_train_in_parallel_and_a_second_call_reuses_them(tmp_path, capsys):
    out = tmp_path / "rep"
    assert (
        cli.main(
            ["repeat", "--seeds", "0", "1", "--workers", "2", "--out", str(out), "--", *QUICK, "--data-dir", REAL_DATA]
        )
        == 0
    )
    text = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["eval_on"] == "val"
    assert summary["workers"] == 2
    accs = [json.loads((out / f"seed-{s}" / "metrics.json").read_text())["eval_acc"] for s in (0, 1)]
    assert summary["values"] == accs and accs[0] != accs[1]  # two seeds, two runs
    assert summary["mean"] == pytest.approx(statistics.mean(accs))
    assert f"{100 * summary['mean']:.2f} ± {100 * summary['std']:.2f} %" in text
    (out / "seed-1" / "metrics.json").unlink()  # as if seed 1 had been killed after its checkpoint
    mtime = (out / "seed-0" / "metrics.json").stat().st_mtime
    assert cli.main(["repeat", "--seeds", "0", "1", "--out", str(out), "--", *QUICK, "--data-dir", REAL_DATA]) == 0
    assert (out / "seed-0" / "metrics.json").stat().st_mtime == mtime  # read, not trained again
    cores = os.cpu_count() or 1
    assert f"2 seeds (1 to train), 1 at a time, {cores} thread(s) each" in capsys.readouterr().out  # all cores
    assert "resuming" in (out / "seed-1.log").read_text()


def test_summary_is_mean_and_sample_std():
    runs = {s: {"final_test_acc": a, "train_seconds": 10.0} for s, a in ((0, 0.87), (1, 0.88), (2, 0.86))}
    s = summarize(runs)
    assert s["mean"] == pytest.approx(0.87) and s["std"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--", "--seed", "3"], "repeat sets them itself"),
        (["--", "--out", "x"], "repeat sets them itself"),
        (["--", "--epochs", "zero"], "bad train options"),
        (["--", "--time", "5m"], "--time after -- needs --model: each seed would pick a model for itself"),
    ],
)
def test_bad_train_options_fail_before_anything_runs(extra, says):
    with pytest.raises(TinyCifarError, match=says):
        train_argv(extra)


def test_a_failing_seed_is_one_line_exit_2(tmp_path, capsys):
    rc = cli.main(["repeat", "--seeds", "0", "--out", str(tmp_path), "--", "--model", "nosuchnet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed 0 failed" in err and "seed-0.log" in err
    assert "nosuchnet" in (tmp_path / "seed-0.log").read_text()  # the worker's own error, kept
