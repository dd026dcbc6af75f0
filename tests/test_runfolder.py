"""Run folders: the lock, --overwrite, and writes that never go through a symlink."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import write_batches

from tinycifar import cli
from tinycifar.atomic import write_json
from tinycifar.data import BATCHES_DIR
from tinycifar.errors import TinyCifarError
from tinycifar.runfolder import LOCK, clear_run, run_lock

QUICK = ["--device", "cpu", "--no-progress", "--epochs", "1", "--warmup-epochs", "0", "--batch-size", "50"]


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
import time
from tinycifar.runfolder import run_lock
with run_lock({str(tmp_path)!r}):
    print("held", flush=True)
    time.sleep(60)
""",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TinyCifarError, match=f"is in use by another tinycifar process .*pid {holder.pid}"):
            with run_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / LOCK).exists()  # SIGKILL: nothing cleaned up, yet the lock is stale
    with run_lock(tmp_path):
        assert f"pid {os.getpid()}" in (tmp_path / LOCK).read_text()
        with run_lock(tmp_path):  # re-entrant within one process
            pass
        assert (tmp_path / LOCK).exists()
    assert not (tmp_path / LOCK).exists()


def test_overwrite_deletes_the_old_run_and_keeps_other_files(tmp_path, tiny, capsys):
    data = tmp_path / "data"
    write_batches(data / BATCHES_DIR)
    out = tmp_path / "run"
    argv = ["train", "--data-dir", str(data), "--out", str(out), *QUICK]
    assert cli.main(argv) == 0
    first = (out / "metrics.json").read_text()
    (out / "notes.txt").write_text("mine")
    assert cli.main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    time.sleep(0.01)
    assert cli.main([*argv, "--overwrite", "--seed", "1"]) == 0
    assert "--overwrite: deleted config.json" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["seed"] == 1 != json.loads(first)["seed"]
    assert (out / "notes.txt").read_text() == "mine" and not (out / LOCK).exists()
    assert [line for line in (out / "log.jsonl").read_text().splitlines()] and not list(out.glob("*.tmp"))


def test_writes_replace_a_planted_symlink_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "config.json").symlink_to(victim)
    write_json(tmp_path / "config.json", {"a": 1})
    assert victim.read_text() == "precious"
    assert not (tmp_path / "config.json").is_symlink() and json.loads((tmp_path / "config.json").read_text()) == {
        "a": 1
    }
    assert clear_run(tmp_path) == ["config.json"] and victim.read_text() == "precious"
