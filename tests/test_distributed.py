"""Data-parallel training: two real processes under torchrun, gloo on the CPU."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tinycifar.distributed import DataParallel, Single

SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from conftest import synthetic_cifar
    from tinycifar.recipe import load_recipe
    import dataclasses
    from tinycifar.callbacks import ConsoleLog
    from tinycifar.runconfig import RunConfig
    from tinycifar.train import fit
    from tinycifar.models import register_model

    @register_model("nobn", "no BatchNorm: nothing depends on how a batch is split")
    def nobn(num_classes=10):
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(4),
                                   torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, num_classes))

    # the stem's bias freezes as epoch 2 starts: DDP is made again for the parameters that train
    recipe = dataclasses.replace(load_recipe("fast"), epochs=2, batch_size=32, eval_every=1, warmup_epochs=0.5,
                                 whiten_bias_epochs=1)
    # "up to float rounding" is fp32's: auto takes bf16 on a CPU with it
    config = RunConfig(sys.argv[4], recipe, seed=int(sys.argv[3]), device="cpu", precision="fp32")
    fit(config, synthetic_cifar(320), synthetic_cifar(100, seed=1), sys.argv[1], [ConsoleLog(progress=False)],
        resume=sys.argv[2] == "resume")
""")


def _run(tmp_path: Path, out: Path, processes: int, seed: int = 0, mode: str = "fresh", model: str = "fastnet") -> str:
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    if processes == 1:
        cmd = [sys.executable, str(script), str(out), mode, str(seed), model]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            str(script),
            str(out),
            mode,
            str(seed),
            model,
        ]
    scratch = tmp_path / "tmp"  # the ranks' temp folder: rank 1 writes its scratch copy here
    scratch.mkdir(exist_ok=True)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _distance(a: dict, b: dict) -> float:
    """Relative distance between two sets of weights (trainable and BN statistics)."""
    num = sum(float((a[k].float() - b[k].float()).norm() ** 2) for k in a)
    den = sum(float(a[k].float().norm() ** 2) for k in a)
    return (num / den) ** 0.5


@pytest.mark.slow
def test_two_gloo_processes_train_like_one_with_the_same_global_batch(tmp_path):
    for name, processes, seed in (("ddp", 2, 0), ("single", 1, 0), ("other-seed", 1, 1)):
        _run(tmp_path, tmp_path / name, processes, seed, model="nobn")

    ddp = tmp_path / "ddp"
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in (tmp_path / "single").iterdir())
    metrics = json.loads((ddp / "metrics.json").read_text())
    assert metrics["processes"] == 2  # and check_in_sync found both ranks' weights identical
    log = [json.loads(x) for x in (ddp / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert not list((tmp_path / "tmp").glob("tinycifar-rank*"))  # rank 1 wrote a scratch copy, then removed it

    w = {name: load_file(tmp_path / name / "model.safetensors") for name in ("ddp", "single", "other-seed")}
    # Same data order, same global batch, gradients averaged over the two halves: the
    # one-process run's weights up to float rounding (tolerance 1e-4 of their norm; another
    # seed lands ~1e0 away). A model without BatchNorm, because with it each rank normalises
    # its 16 images by their own statistics and the runs drift apart (20% after 2 epochs of
    # fastnet here, against 34% for another seed): close, not equal, as the docs say.
    near, far = _distance(w["single"], w["ddp"]), _distance(w["single"], w["other-seed"])
    assert near < 1e-4, near
    assert far > 0.1, far


@pytest.mark.slow
def test_a_ddp_run_resumes_to_the_same_end(tmp_path):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    _run(tmp_path, full, processes=2)
    _run(tmp_path, resumed, processes=2)
    # Roll the second run back to its first epoch's checkpoint, then resume it.
    (resumed / "previous.pt").replace(resumed / "last.pt")
    (resumed / "model.safetensors").unlink()
    out = _run(tmp_path, resumed, processes=2, mode="resume")
    assert out.count("resuming") == 1  # rank 0 alone speaks
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert _distance(a, b) < 1e-6


def test_each_rank_takes_its_own_rows_of_every_batch():
    ranks = [DataParallel(r, 4) for r in range(4)]
    rows = [list(range(40))[r.rows(step=2, batch_size=8)] for r in ranks]
    assert rows == [[16, 17], [18, 19], [20, 21], [22, 23]]  # batch 2 of 8, split four ways
    assert list(range(40))[Single().rows(2, 8)] == list(range(16, 24))


def test_a_batch_that_does_not_split_is_refused(monkeypatch):
    from tinycifar.distributed import from_env
    from tinycifar.errors import TinyCifarError

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(TinyCifarError, match="multiple of 3"):
        from_env(torch.device("cpu"), 256)
