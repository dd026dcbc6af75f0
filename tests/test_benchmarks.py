"""The scripts that turn benchmark runs into the README's tables and shipped files: the
fp32/bf16 parity table, the time-to-accuracy summary merged from processes run side by side,
and a run's weights shipped as a zoo model's."""

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinycifar.checkpoint import save_weights
from tinycifar.models import create_model
from tinycifar.pretrained import load_model
from tinycifar.recipe import load_recipe

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def script(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def fake_run(folder: Path, precision: str, seed: int, acc: float, epochs: int = 14) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps({"model": "fastnet", "recipe": {"epochs": epochs}, "seed": seed, "eval_on": "val"})
    )
    (folder / "metrics.json").write_text(json.dumps({"precision": precision, "final_val_acc": acc}))
    return folder


def test_parity_table_pairs_seeds_and_reports_the_difference(tmp_path):
    runs = [
        fake_run(tmp_path / f"{p}-s{s}", p, s, a)
        for p, s, a in [
            ("fp32", 0, 0.868),
            ("fp32", 1, 0.8756),
            ("fp32", 2, 0.8764),
            ("bf16", 0, 0.8736),
            ("bf16", 1, 0.8756),
            ("bf16", 2, 0.876),
        ]
    ]
    out = script("precision_parity.py", *runs)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "| 0 | 86.80 | 87.36 | +0.56 |" in lines
    assert "| 2 | 87.64 | 87.60 | -0.04 |" in lines
    assert lines[-1] == "| mean ± std | 87.33 ± 0.46 | 87.51 ± 0.13 | +0.17 ± 0.34 |"


def test_parity_table_refuses_runs_of_different_recipes(tmp_path):
    runs = [fake_run(tmp_path / "a", "fp32", 0, 0.87), fake_run(tmp_path / "b", "bf16", 0, 0.87, epochs=30)]
    out = script("precision_parity.py", *runs)
    assert out.returncode != 0 and "differ" in out.stderr


def test_parity_table_refuses_a_seed_run_in_one_precision_only(tmp_path):
    runs = [
        fake_run(tmp_path / "a", "fp32", 0, 0.87),
        fake_run(tmp_path / "b", "bf16", 0, 0.87),
        fake_run(tmp_path / "c", "fp32", 1, 0.87),
    ]
    out = script("precision_parity.py", *runs)
    assert out.returncode != 0 and "each seed needs one run in each precision" in out.stderr


def tta_summary(
    folder: Path, seed: int, acc: float, train_s: float, base_s: float, cpu: str = "Xeon", epochs: int = 14
) -> Path:
    folder.mkdir(parents=True)
    (folder / "time_to_accuracy.json").write_text(
        json.dumps(
            {
                "cpu": cpu,
                "cpu_flags": ["amx_bf16"],
                "threads": 2,
                "torch": "2.x",
                "model": "fastnet",
                "recipe": "fast",
                "precision": "bf16",
                "process_wall_s": 400.0,
                "ratio": train_s / base_s,
                "fast": [
                    {
                        "seed": seed,
                        "test_acc": acc,
                        "train_s": train_s,
                        "wall_s": train_s,
                        "epochs": epochs,
                        "precision": "bf16",
                        "tmac": 22.1,
                    }
                ],
                "baseline": {
                    "model": "tinynet",
                    "recipe": "classic",
                    "precision": "fp32",
                    "timed_epochs": 2,
                    "timed_s": base_s / 15,
                    "train_s_extrapolated": base_s,
                    "wall_s_timed": base_s / 15,
                    "recorded_acc": [0.88, 0.876, 0.877],
                },
            }
        )
    )
    return folder


def test_time_to_accuracy_merges_processes_into_one_summary(tmp_path):
    parts = [tta_summary(tmp_path / "s0", 0, 0.8719, 300, 1800), tta_summary(tmp_path / "s1", 1, 0.8748, 330, 1500)]
    out = script("time_to_accuracy.py", "--merge", *parts, "--out", tmp_path / "merged")
    assert out.returncode == 0, out.stderr
    merged = json.loads((tmp_path / "merged" / "time_to_accuracy.json").read_text())
    assert [r["seed"] for r in merged["fast"]] == [0, 1]
    assert merged["baseline"]["train_s_extrapolated"] == 1650
    assert abs(merged["ratio"] - 315 / 1650) < 1e-9
    assert merged["process_ratios"] == [300 / 1800, 330 / 1500]
    assert "ratio 0.191" in out.stdout and (tmp_path / "merged" / "time_to_accuracy.png").is_file()


@pytest.mark.parametrize("other", [{"cpu": "EPYC"}, {"epochs": 2}])  # another machine; a smoke run
def test_time_to_accuracy_refuses_to_merge_unlike_runs(tmp_path, other):
    parts = [tta_summary(tmp_path / "a", 0, 0.87, 300, 1800), tta_summary(tmp_path / "b", 1, 0.87, 300, 1800, **other)]
    out = script("time_to_accuracy.py", "--merge", *parts, "--out", tmp_path / "merged")
    assert out.returncode != 0 and "differ" in out.stderr


def test_precision_speed_knows_the_candidate_networks():
    # sepnet_hires is #8's candidate: whether its run fits the hour on a bf16 CPU is its bf16 rate
    out = script(
        "precision_speed.py",
        "--candidates",
        "--models",
        "sepnet_hires",
        "--batch-size",
        "4",
        "--steps",
        "1",
        "--threads",
        "1",
    )
    assert out.returncode == 0, out.stderr
    line = out.stdout.splitlines()[-1]
    assert line.startswith("sepnet_hires") and line.count("img/s") == 2


def fake_record(
    folder: Path, name: str, seed: int, acc: float, *, precision: str = "fp32", teacher: str | None = None, **recipe
) -> None:
    """A record as benchmarks/record.py writes it: one run of sepnet_g31, fast recipe, 37 epochs."""
    config = {
        "model": "sepnet_g31",
        "recipe": {"epochs": 37, "batch_size": 256, **recipe},
        "seed": seed,
        "eval_on": "val",
        "train_images": 45000,
        "eval_images": 5000,
        "precision": precision,
    }
    if teacher:
        config["teacher"] = teacher
    gpu = precision == "bf16"
    environment = {
        "cpu": "AMD EPYC",
        "cpu_flags": ["avx2"],
        "threads": 2,
        "device": "cuda" if gpu else "cpu",
        **({"cuda": "NVIDIA H100"} if gpu else {}),
    }
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(
        json.dumps(
            {
                "run": name,
                "note": "",
                "config": config,
                "environment": environment,
                "metrics": {"precision": precision, "final_val_acc": acc, "train_seconds": 60.0 * (seed + 1)},
            }
        )
    )


def test_seed_table_assembles_one_configuration_across_machines_and_keeps_teachers_apart(tmp_path):
    fake_record(tmp_path, "a", 0, 0.9126, precision="bf16")
    fake_record(tmp_path, "b", 1, 0.9058, precision="bf16")
    # another session, fp32 on a CPU, recording a field added since (off): the same configuration
    fake_record(tmp_path, "c", 2, 0.9100, distill=0.0)
    fake_record(tmp_path, "kd", 0, 0.9200, teacher="bc18", distill=0.7)
    (tmp_path / "speed.json").write_text('{"images_per_s": 900}')  # not a run: skipped
    out = script("seed_table.py", tmp_path, "--min-seeds", "2")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "sepnet_g31; recipe long; 45,000 training images, 5,000 val"  # the packaged one it is
    assert "| a | 0 | 91.26% | 1.0 | bf16 | NVIDIA H100 |" in lines
    assert "| c | 2 | 91.00% | 3.0 | fp32 | AMD EPYC (avx2, 2 threads) |" in lines
    assert "| mean ± std (3 seeds) | | 90.95 ± 0.34% | | | |" in lines
    assert not any("teacher" in line or line.startswith("| kd") for line in lines)  # one seed: left out
    every = script("seed_table.py", tmp_path).stdout.splitlines()
    assert "sepnet_g31; recipe long with distill 0.7; teacher bc18; 45,000 training images, 5,000 val" in every
    assert "| mean ± std (1 seed) | | no spread from one seed | | | |" in every


def test_seed_table_refuses_a_seed_recorded_twice(tmp_path):
    fake_record(tmp_path, "s09", 0, 0.91)
    fake_record(tmp_path, "s09-again", 0, 0.90)
    out = script("seed_table.py", tmp_path)
    assert out.returncode != 0
    assert "repeat a seed of one configuration: move the one that should not count out of the folder" in out.stderr
    assert {"s09", "s09-again"} <= set(out.stderr.removeprefix("runs ").split(" repeat")[0].split(", "))


def test_mcu_table_puts_the_reference_beside_our_models(tmp_path, fake_root, monkeypatch):
    pytest.importorskip("litert_torch", reason="the [tflite-export] extra is not installed")
    reference = Path(__file__).resolve().parents[2] / "shared/peers/mlperf-tiny-ic01/pretrainedResnet_quant.tflite"
    if not reference.is_file():
        pytest.skip(f"no IC01 reference at {reference}")
    # In this process: the fake data set's batch size is patched here, not in a subprocess.
    spec = importlib.util.spec_from_file_location("mcu_benchmark", BENCHMARKS / "mcu.py")
    mcu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mcu)
    argv = ["mcu.py", "--data-dir", str(fake_root), "--reference", str(reference), "--models", "fastnet"]
    monkeypatch.setattr(sys, "argv", [*argv, "--images", "12", "--out", str(tmp_path)])
    mcu.main()
    info = json.loads((tmp_path / "mcu.json").read_text())
    reference_row, fastnet = info["rows"]
    assert reference_row["model"].startswith("IC01") and reference_row["arena_bytes"] == 55_984
    assert fastnet["model"] == "fastnet" and fastnet["weights"] == "shipped" and fastnet["arena_bytes"] > 0
    assert abs(fastnet["flash_estimate"] - fastnet["flash_bytes"]) <= 0.03 * fastnet["flash_bytes"]
    assert info["images"] == 12 and "flags" in info["cpu"]
    table = (tmp_path / "mcu.md").read_text()
    assert "| IC01 reference (MLPerf Tiny) | 78,666 |" in table and "| fastnet | 94,776 |" in table
    assert (tmp_path / "mcu.png").stat().st_size > 1000


def _fastnet_run(folder: Path, eval_on: str = "test", **recipe_changes) -> Path:
    """A finished `tinycifar train` run of the zoo's fastnet, as the folder holds it."""
    folder.mkdir()
    recipe = dataclasses.asdict(dataclasses.replace(load_recipe("fast"), **recipe_changes))
    config = {
        "model": "fastnet",
        "model_args": None,
        "recipe": recipe,
        "seed": 0,
        "eval_on": eval_on,
        "train_images": 50_000 if eval_on == "test" else 45_000,
        "eval_images": 10_000,
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "environment.json").write_text(json.dumps({"cpu": "test"}))
    (folder / "metrics.json").write_text(json.dumps({"model": "fastnet", "eval_acc": 0.88, "eval_loss": 0.5}))
    (folder / "log.jsonl").write_text(json.dumps({"epoch": 1, "eval_acc": 0.88, "eval_loss": 0.5}) + "\n")
    torch.manual_seed(0)
    save_weights(create_model("fastnet"), folder / "model.safetensors", {"model": "fastnet"})
    return folder


def test_a_run_ships_as_the_zoos_weights_with_its_records(tmp_path):
    run = _fastnet_run(tmp_path / "run")
    into = tmp_path / "weights"
    into.mkdir()
    out = script("ship_weights.py", run, "--model", "fastnet", "--command", "tinycifar train --seed 0", "--into", into)
    assert out.returncode == 0, out.stderr
    shipped = load_model("fastnet", into / "fastnet.safetensors", "cpu")
    original = load_model("fastnet", run / "model.safetensors", "cpu")
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), original.state_dict().values()))
    record = json.loads((into / "fastnet.run.json").read_text())
    assert record["command"] == "tinycifar train --seed 0" and record["metrics"]["final_test_acc"] == 0.88
    assert json.loads((into / "fastnet.log.jsonl").read_text())["test_acc"] == 0.88


@pytest.mark.parametrize(
    ("change", "says"),
    [({"epochs": 10}, "not the packaged fast recipe"), ({"eval_on": "val"}, "all 50,000 images")],
)
def test_a_run_of_another_recipe_or_on_the_validation_split_does_not_ship(tmp_path, change, says):
    eval_on = change.pop("eval_on", "test")
    run = _fastnet_run(tmp_path / "run", eval_on, **change)
    out = script("ship_weights.py", run, "--model", "fastnet", "--command", "x", "--into", tmp_path)
    assert out.returncode != 0 and says in out.stderr
    assert not (tmp_path / "fastnet.safetensors").exists()
