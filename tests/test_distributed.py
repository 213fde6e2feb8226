"""Training on several processes (ragft.training.loop on accelerate, launch, distcheck): two CPU processes over gloo
train the same adapter as one process, an interrupted two-process run resumes, exactly one adapter folder is written,
a run waits for another holding the adapter's lock, and a launch with too many processes stops with one line."""

import json
import os
import subprocess
import sys
import time

import pytest

from ragft.core.cache import locked
from ragft.training import batches, distcheck, launch
from ragft.training import finetune as ft

ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
ONE = [sys.executable, "-m", "ragft.training.distcheck"]
TWO = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
       "ragft.training.distcheck"]


def test_each_process_takes_a_contiguous_part_of_every_micro_batch():
    idx = [7, 3, 9, 1, 4]
    parts = [batches.shard(idx, r, 2) for r in range(2)]
    assert parts == [[7, 3, 9], [1, 4]] and batches.shard(idx, 0, 1) == idx
    assert [len(batches.shard(idx, r, 5)) for r in range(5)] == [1] * 5
    assert batches.completion_tokens([-100, -100, 5, 6, -100]) == 2  # the first label is never predicted


def test_more_processes_than_examples_per_micro_batch_stop_with_one_line():
    launch.check_launch(batch_size=4, world=4)
    with pytest.raises(launch.LaunchError) as e:
        launch.check_launch(batch_size=2, world=8)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)  # the CLI prints a ValueError as one line
    assert "8 processes" in str(e.value) and "batch_size=2" in str(e.value)


def _run(cmd, out, *extra, timeout=300):
    return subprocess.run([*cmd, str(out), *extra], env=ENV, capture_output=True, text=True, timeout=timeout)


def _adapters(out):
    return sorted(p.name for p in (out / "cache" / "adapters").iterdir())


def _weights(out):
    from safetensors.torch import load_file

    (name,) = _adapters(out)
    return load_file(str(out / "cache" / "adapters" / name / "adapter_model.safetensors"))


def test_two_processes_train_what_one_process_trains_and_resume(tmp_path):
    t0 = time.perf_counter()
    pairs, lora, train = distcheck.settings()
    one, two = tmp_path / "one", tmp_path / "two"
    lock = one / "cache" / "locks" / f"adapter-{ft.run_key(distcheck.MODEL_NAME, pairs, lora, train)[:24]}.lock"
    with locked(lock):  # another run holds this adapter: the one-process run must wait before writing anything
        proc = subprocess.Popen([*ONE, str(one)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not (one / "cache" / "adapters").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # the run names its adapter folder just before it takes the lock
        time.sleep(1.0)
        assert proc.poll() is None and not (one / "cache" / "checkpoints").exists(), "ran past another run's lock"
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]

    stopped = _run(TWO, two, "--stop-at", "3")  # every process stops after step 3; the main one checkpoints first
    assert stopped.returncode != 0
    (traj,) = (two / "cache" / "checkpoints").iterdir()
    assert json.loads((traj / "latest" / "state.json").read_text())["step"] == 3 and _adapters(two) == []
    resumed = _run(TWO, two)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = (json.loads((d / "result.json").read_text()) for d in (one, two))
    assert a["world"] == 1 and b["world"] == 2 and b["resumed_from"] == 3
    assert len(a["losses"]) == len(b["losses"]) == train.steps and a["step_tokens"] == b["step_tokens"]
    diff = max(abs(x - y) for x, y in zip(a["losses"], b["losses"], strict=True))
    assert diff <= 1e-4, f"two-process loss curve differs from one process by {diff:.2e}"
    assert [s for s, _ in a["eval_losses"]] == [s for s, _ in b["eval_losses"]] == [0, 2, 4]
    assert max(abs(x[1] - y[1]) for x, y in zip(a["eval_losses"], b["eval_losses"], strict=True)) <= 1e-4
    assert len(_adapters(two)) == 1 and _adapters(one) == _adapters(two)  # one folder, the same cache key
    wa, wb = _weights(one), _weights(two)
    dw = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert wa.keys() == wb.keys() and dw <= 1e-5, f"adapter weights differ by {dw:.2e}"
    print(f"two processes vs one: loss max abs diff {diff:.1e}, adapter weights {dw:.1e}; "
          f"{time.perf_counter() - t0:.0f} s for three launches")
