"""The one caching module, the profiles and the single sources of truth (house prompt, dtype policy)."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ragft.core import cache, house, profiles


def test_content_key_ignores_dict_order_and_sees_every_value():
    assert cache.content_key({"a": 1, "b": [1, 2]}) == cache.content_key({"b": [1, 2], "a": 1})
    assert cache.content_key({"a": 1}) != cache.content_key({"a": 2})
    assert len(cache.content_key("x")) == 64


def test_seeded_order_is_deterministic_and_depends_on_the_seed():
    names = [f"n{i}" for i in range(50)]
    a = sorted(names, key=lambda t: cache.seeded_key(0, t))
    assert a == sorted(names, key=lambda t: cache.seeded_key(0, t))
    assert a != sorted(names, key=lambda t: cache.seeded_key(1, t))
    units = [cache.seeded_unit(0, t) for t in names]
    assert all(0 <= u < 1 for u in units) and 0.3 < sum(units) / len(units) < 0.7


def test_files_state_changes_when_a_file_changes(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"1")
    before = cache.files_state(tmp_path)
    assert cache.files_state(tmp_path) == before
    (tmp_path / "a.bin").write_bytes(b"22")
    assert cache.files_state(tmp_path) != before
    (tmp_path / ".hidden").write_text("x")  # dotfiles (locks, temporary writes) are not content
    assert cache.files_state(tmp_path) == cache.files_state(tmp_path)


def test_key_value_cache_round_trip_and_counts(tmp_path):
    kv = cache.KeyValueCache(tmp_path / "kv")
    assert kv.get("k") is None and kv.misses == 1
    kv.put("k", {"text": "hi", "n": 3})
    assert kv.get("k") == {"text": "hi", "n": 3} and kv.hits == 1 and len(kv) == 1 and "k" in kv
    assert cache.KeyValueCache(tmp_path / "kv").get("k") == {"text": "hi", "n": 3}  # another handle, same store


WRITER = """
import sys
from ragft.core.cache import KeyValueCache
kv = KeyValueCache(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    kv.put(f"k{i % 50}", {"i": i, "blob": "x" * 200_000})
    i += 1
"""


def test_a_writer_killed_mid_write_leaves_only_whole_values(tmp_path):
    folder = tmp_path / "kv"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.8)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kv = cache.KeyValueCache(folder)
    values = [kv.get(f"k{i}") for i in range(50)]
    present = [v for v in values if v is not None]
    assert present, "the writer wrote nothing in 0.8 s"
    assert all(len(v["blob"]) == 200_000 and isinstance(v["i"], int) for v in present)


def test_locked_serializes_two_threads(tmp_path):
    order = []

    def worker(name):
        with cache.locked(tmp_path / "x.lock"):
            order.append(f"{name} in")
            time.sleep(0.1)
            order.append(f"{name} out")

    threads = [threading.Thread(target=worker, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order[0].endswith("in") and order[1] == order[0].replace("in", "out")


def test_profiles_resolve_keeps_the_profile_unless_told():
    smoke = profiles.resolve("smoke")
    assert smoke == profiles.get("smoke") and smoke.n_questions == 8 and smoke.arms_docs == 80
    assert profiles.resolve("smoke", n_questions=20).n_questions == 20
    assert profiles.resolve("smoke", n_questions=0, n_docs=None).n_docs == 150
    assert profiles.resolve("workshop", chunking_docs=0).chunking_docs == 120
    with pytest.raises(ValueError, match="unknown profile setting"):
        profiles.resolve("smoke", n_questons=3)
    with pytest.raises(ValueError, match="unknown PROFILE"):
        profiles.resolve("huge")


def test_house_system_prompt_describes_the_format_the_parser_checks():
    prompt = house.SYSTEM_PROMPT
    template = prompt.split("Reply in exactly this format:\n", 1)[1].split("\nIf the documentation", 1)[0]
    assert template == house.render("<one sentence>", "<a short code example>", ["<doc ids you used>"])
    assert house.parse(template).compliant
    assert prompt.endswith(house.ABSTAIN_ANSWER)


def test_one_dtype_policy_for_training_and_inference(monkeypatch):
    import torch

    from ragft.generation import models

    monkeypatch.setattr(models, "device", lambda: "cpu")
    monkeypatch.setattr(models, "cpu_has_fast_bf16", lambda: True)
    assert models.choose_dtype("auto", "training") == torch.float32  # exact LoRA gradients on the 4-bit base
    assert models.choose_dtype("auto", "inference") == torch.bfloat16
    monkeypatch.setattr(models, "cpu_has_fast_bf16", lambda: False)
    assert models.choose_dtype("auto", "inference") == torch.float32
    monkeypatch.setattr(models, "device", lambda: "cuda")
    assert models.choose_dtype("auto", "training") == torch.bfloat16
    assert models.choose_dtype("float32", "inference") == torch.float32
    with pytest.raises(ValueError, match="unknown dtype"):
        models.choose_dtype("fp8")
