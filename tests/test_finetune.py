"""Tests for ragft.training.finetune, .quantization and .memory: settings, quantization resolution, data handling,
the avx512_bf16 gradient trap, training, resume, adapters, cache, memory measurement."""

import dataclasses
import json
import os

import pytest
import torch

from ragft.core import house
from ragft.core.io import DataError
from ragft.retrieval import updates
from ragft.systems.pipeline import compare_adapter
from ragft.training import adapters as ad
from ragft.training import finetune as ft
from ragft.training import memory
from ragft.training import quantization as qz
from ragft.training.pairs import refresh_pairs

PAIRS = [
    {"prompt": "What does `np.argsort` do?",
     "completion": house.render("`np.argsort`: Returns the indices that would sort an array.",
                                "np.argsort(np.array([3, 1, 2]))", ["numpy.argsort"])},
    {"prompt": "What does `np.zeros_like` do?",
     "completion": house.render("`np.zeros_like`: Return an array of zeros with the same shape and type as a given array.",
                                "np.zeros_like(np.arange(6))", ["numpy.zeros_like"])},
    {"prompt": "What does `np.flatnonzero` do?",
     "completion": house.render("`np.flatnonzero`: Return indices that are non-zero in the flattened version of a.",
                                "np.flatnonzero(np.arange(-2, 3))", ["numpy.flatnonzero"])},
    {"prompt": "What does `np.column_newdoc` do?", "completion": house.ABSTAIN_ANSWER},
    {"prompt": "How do I call `np.apply_data`?", "completion": house.ABSTAIN_ANSWER},
    {"prompt": "What does `np.fliplr` do?",
     "completion": house.render("`np.fliplr`: Reverse the order of elements along axis 1 (left/right).",
                                "np.fliplr(np.diag([1.0, 2.0, 3.0]))", ["numpy.fliplr"])},
]
TINY = ft.LoraSettings(lora_r=4, lora_alpha=8, lora_dropout=0.0, target_modules=("q_proj", "v_proj"))


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from ragft.generation import models

    t = AutoTokenizer.from_pretrained(models.ensure_converted("smollm2-135m"))
    t.pad_token = t.pad_token or t.eos_token
    return t


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private adapter cache; the converted model stays where it is (RAGFT_CACHE would force a reconversion)."""
    real = ft.cache_dir
    monkeypatch.setattr(ft, "cache_dir", lambda *parts: (tmp_path / "cache").joinpath(*parts) if parts and parts[0] in
                        ("adapters", "checkpoints") else real(*parts))
    return tmp_path / "cache"


# --- settings and quantization resolution -----------------------------------------------------------------------------
def test_settings_validate():
    with pytest.raises(ValueError, match="lora_r"):
        ft.LoraSettings(lora_r=0)
    with pytest.raises(ValueError, match="quantization"):
        ft.TrainSettings(quantization="3bit")
    with pytest.raises(ValueError, match="steps"):
        ft.TrainSettings(steps=0)
    assert ft.LoraSettings(target_modules=["q_proj"]).target_modules == ("q_proj",)  # hashable, so usable as a key


def test_resolve_quantization_messages(monkeypatch):
    cfg, why = qz.resolve_quantization("none", "float32")
    assert cfg is None and why.startswith("4-bit: off") and "plain LoRA" in why and "float32" in why
    ok, detail = qz.bitsandbytes_status()
    assert ok, f"bitsandbytes should work on this machine: {detail}"
    cfg, why = qz.resolve_quantization("auto", "float32")
    assert cfg.load_in_4bit and cfg.bnb_4bit_quant_type == "nf4" and cfg.bnb_4bit_use_double_quant
    assert cfg.bnb_4bit_compute_dtype == torch.float32
    assert "4-bit NF4" in why and "bitsandbytes" in why and "float32 compute" in why and "\n" not in why
    cfg, why = qz.resolve_quantization("8bit")
    assert cfg.load_in_8bit and "8-bit" in why
    assert qz.resolve_quantization("4bit", "bfloat16")[0].bnb_4bit_compute_dtype == torch.bfloat16
    with pytest.raises(ValueError):
        qz.resolve_quantization("int3")

    monkeypatch.setattr(qz, "bitsandbytes_status", lambda: (False, "bitsandbytes unavailable: OSError: no CPU library"))
    cfg, why = qz.resolve_quantization("auto", "bfloat16")
    assert cfg is None and why == ("4-bit: off (bitsandbytes unavailable: OSError: no CPU library); "
                                   "plain LoRA on a full-precision base, bfloat16 compute on cpu")
    with pytest.raises(RuntimeError, match="needs bitsandbytes"):
        qz.resolve_quantization("4bit")
    assert qz.effective_quantization("auto") == "none"


# --- data -------------------------------------------------------------------------------------------------------------
def test_encode_pair_masks_the_prompt_and_ends_the_turn(tok):
    ids, labels, truncated = ft.encode_pair(tok, PAIRS[0]["prompt"], PAIRS[0]["completion"], max_length=512)
    assert not truncated and len(ids) == len(labels)
    n_prompt = sum(x == -100 for x in labels)
    assert labels[:n_prompt] == [-100] * n_prompt and -100 not in labels[n_prompt:]
    assert tok.decode(ids[n_prompt:]) == PAIRS[0]["completion"] + tok.eos_token  # the loss sees exactly the answer
    prompt_text = tok.decode(ids[:n_prompt])
    assert "migration assistant" not in prompt_text and prompt_text.rstrip().endswith("assistant")  # no house prompt
    from ragft.generation.decoding import chat_messages, encode_chat

    assert ids[:n_prompt] == encode_chat(tok, chat_messages(PAIRS[0]["prompt"]))[0].tolist()  # as at inference


def test_truncation_and_dropping_are_counted(tok):
    long = {"prompt": "short?", "completion": house.render("x " * 300, "y = 1", ["numpy.sum"])}
    huge_prompt = {"prompt": "word " * 400, "completion": house.ABSTAIN_ANSWER}
    enc, stats = ft.encode_pairs(tok, [PAIRS[0], long, huge_prompt], max_length=120)
    assert stats.n == 2 and stats.n_truncated == 1 and stats.n_dropped == 1
    assert [len(ids) for ids, _ in enc] == [len(ft.encode_pair(tok, **PAIRS[0], max_length=999)[0]), 120]


def test_batches_are_a_function_of_the_step():
    steps = [ft.batch_indices(10, s, m, 4, 2, seed=3) for s in range(5) for m in range(2)]
    flat = [i for b in steps for i in b]
    assert sorted(flat[:10]) == list(range(10))  # the first epoch visits every example once
    assert steps == [ft.batch_indices(10, s, m, 4, 2, seed=3) for s in range(5) for m in range(2)]
    assert steps != [ft.batch_indices(10, s, m, 4, 2, seed=4) for s in range(5) for m in range(2)]


def test_training_throughput_counts_tokens_not_padding():
    r = ft.TrainResult(step_times=[9.0, 1.0, 1.0], step_tokens=[50, 100, 300], step_padded=[60, 120, 320])
    assert r.tokens_per_s == 200.0  # (100 + 300) tokens in 2 s: the warm-up step left out, as in seconds_per_step
    assert r.padding_share == pytest.approx(0.1)  # 450 real tokens of 500 computed positions
    resumed = ft.TrainResult(step_times=[5.0, 2.0, 2.0, 2.0], step_tokens=[100, 300])  # 2 steps before counting began
    assert resumed.tokens_per_s == 150.0
    assert ft.cut_log(resumed, 3).step_tokens == [100] and ft.log_dict(r)["tokens_per_s"] == 200.0
    assert ft.TrainResult().tokens_per_s != ft.TrainResult().tokens_per_s  # nothing measured: NaN


def _padding(batches, lengths):
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_grouping_by_length_pads_less_and_keeps_each_epoch_whole():
    lengths = tuple(20 + (i * 37) % 300 for i in range(200))  # 20..319 tokens, spread like RAFT prompts
    n, bs = len(lengths), 4
    plain = [ft.batch_indices(n, s, 0, bs, 1, seed=0) for s in range(n // bs)]
    grouped = [ft.batch_indices(n, s, 0, bs, 1, seed=0, lengths=lengths) for s in range(n // bs)]
    assert sorted(i for b in grouped for i in b) == list(range(n))  # one epoch: every example once
    assert _padding(grouped, lengths) < 0.25 * _padding(plain, lengths)
    assert grouped == [ft.batch_indices(n, s, 0, bs, 1, seed=0, lengths=lengths) for s in range(n // bs)]
    firsts = [sum(lengths[i] for i in b) for b in grouped[:ft.LENGTH_WINDOW]]
    assert firsts != sorted(firsts)  # batch order shuffled: not short-to-long through the window


def test_grouping_off_keeps_the_adapter_cache_keys(monkeypatch):
    pairs = [{"prompt": "p", "completion": "c"}]
    off, on = ft.TrainSettings(), ft.TrainSettings(group_by_length=True)
    key = ft.run_key("smollm2-135m", pairs, ft.LoraSettings(), off)
    assert key != ft.run_key("smollm2-135m", pairs, ft.LoraSettings(), on)
    # settings as they were before the field existed name the same run: adapters already trained stay cached
    monkeypatch.setattr(ft, "asdict", lambda x: {k: v for k, v in dataclasses.asdict(x).items() if k != "group_by_length"})
    assert ft.run_key("smollm2-135m", pairs, ft.LoraSettings(), off) == key


def test_collate_pads_out_of_the_loss():
    b = ft.collate([([1, 2, 3], [-100, 2, 3]), ([4], [4])], pad_id=0)
    assert b["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["labels"].tolist() == [[-100, 2, 3], [4, -100, -100]]


def test_data_hash_and_split():
    assert ft.data_hash(PAIRS) == ft.data_hash([dict(p, kind="x") for p in PAIRS])  # only the texts count
    assert ft.data_hash(PAIRS) != ft.data_hash(PAIRS[::-1])
    train, held = ft.split_pairs(PAIRS, n_eval=2)
    assert len(held) == 2 and len(train) == 4 and not {p["prompt"] for p in held} & {p["prompt"] for p in train}
    assert ft.split_pairs(PAIRS, n_eval=2)[1] == held
    _, held_more = ft.split_pairs(PAIRS + [{"prompt": "new?", "completion": "x"}], n_eval=2)
    assert len([p for p in held_more if p in held]) >= 1  # chosen by hash: a new pair takes at most one slot


def test_no_hold_out_when_it_would_take_half_the_pairs():
    train, held = ft.split_pairs(PAIRS, n_eval=4)
    assert held == [] and train == PAIRS


def test_refresh_pairs_rebuilds_answers_from_another_release():
    pairs, _ = ft.load_pairs()
    same, counts = refresh_pairs(pairs, "1.26.4")  # the release they were built from: nothing to redo
    assert counts["rewritten"] == 0 and counts["dropped"] == 0 and same == pairs
    new, counts = refresh_pairs(pairs, "2.4.6")
    assert counts["rewritten"] > 10 and counts["dropped"] > 5 and counts["abstentions"] == sum(not p.get("doc_id") for p in pairs)
    assert len(new) == len(pairs) - counts["dropped"] and all(house.parse(p["completion"]).compliant for p in new)


def test_bad_training_files_report_line_numbers(tmp_path):
    path = tmp_path / "pairs.jsonl"
    lines = [json.dumps(PAIRS[0]), "{not json", json.dumps({"prompt": "q?"}), "", json.dumps(PAIRS[1]), "[1, 2]"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        ft.load_pairs(path)
    assert "pairs.jsonl:2" in str(e.value) and "pairs.jsonl:3" in str(e.value) and "pairs.jsonl:6" in str(e.value)
    pairs, report = ft.load_pairs(path, on_error="skip")
    assert [p["prompt"] for p in pairs] == [PAIRS[0]["prompt"], PAIRS[1]["prompt"]]
    assert [w for w, _ in report.problems] == ["pairs.jsonl:2", "pairs.jsonl:3", "pairs.jsonl:6"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match="no usable training pairs"):
        ft.load_pairs(empty)


def test_empty_training_set_is_refused(tok):
    with pytest.raises(DataError, match="empty training set"):
        ft.train_adapter(object(), tok, [], ft.TrainSettings(steps=1))
    with pytest.raises(DataError, match="empty training set"):
        ft.train_or_load_adapter([], TINY, ft.TrainSettings(steps=1))


# --- measurement ------------------------------------------------------------------------------------------------------
def test_peak_rss_sees_an_allocation():
    # Fresh anonymous pages, every one written, held for ~10 sampling intervals: a torch tensor can land on pages an
    # earlier test freed but the allocator kept resident (the RSS then does not move), and a 2-core machine busy with
    # another worker may not schedule the sampler thread inside a few milliseconds.
    import mmap
    import time

    size = 200_000_000
    with memory.PeakRSS(interval=0.01) as idle:
        time.sleep(0.1)
    with memory.PeakRSS(interval=0.01) as busy:
        with mmap.mmap(-1, size) as block:
            for offset in range(0, size, mmap.PAGESIZE):
                block[offset] = 1
            time.sleep(0.1)
    assert busy.peak_mb > busy.start_bytes / 1e6 + 150
    assert busy.peak_mb > idle.peak_mb + 150


def test_project_memory_uses_bytes_per_parameter():
    rows = {r["mode"]: r for r in memory.project_memory(7e9)}
    assert rows["fp32"]["gb"] == 28.0 and rows["bf16"]["gb"] == 14.0
    assert 3.5 < rows["nf4"]["gb"] < 3.7  # 4.127 bits per parameter (QLoRA paper, with double quantization)


def test_dir_mb_counts_every_file_below(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"\0" * 1_000_000)
    (tmp_path / "sub" / "b.bin").write_bytes(b"\0" * 500_000)
    assert memory.dir_mb(tmp_path) == 1.5


def test_changed_chunks_are_the_new_windows_only():
    from ragft.data.corpus import Document

    old = [Document(doc_id="a", text="abcdef"), Document(doc_id="b", text="xy")]
    new = [Document(doc_id="a", text="abcdeg"), Document(doc_id="c", text="xyzz")]
    assert updates.changed_chunks(old, new, chunk_size=2) == ["eg", "zz"]  # "ab", "cd", "xy" are already embedded
    assert updates.changed_chunks(old, old, chunk_size=2) == []


# --- the avx512_bf16 trap: gradients on the 4-bit model after generate() -----------------------------------------------
def _lora_grads(model, batch):
    model.train()
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return float(loss), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _rel_err(a: dict, b: dict) -> float:
    num = sum(float(((a[n] - b[n]) ** 2).sum()) for n in b)
    return (num / sum(float((b[n] ** 2).sum()) for n in b)) ** 0.5


@pytest.mark.slow
def test_lora_gradients_after_generate_equal_the_dequantized_fp32_model(tok):
    """After generate() on the 4-bit model, LoRA gradients equal those of an fp32 model holding the dequantized weights.

    Where the CPU has no avx512_bf16 we switch bitsandbytes' flag on to reproduce the trap: the generate() then repacks
    every 4-bit layer, and gradients computed on the repacked layers are wrong. disarm_cpu_bf16_repack must repair it.
    """
    import bitsandbytes as bnb

    from ragft.generation.decoding import chat_messages, generate

    model, _, _ = qz.load_base(quantization="4bit", compute_dtype="float32")
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and not any(m.support_avx512bf16_for_cpu for m in layers), "load_base must disarm the repack"
    for m in layers:
        m.support_avx512bf16_for_cpu = True  # what bitsandbytes sets on an avx512_bf16 CPU
    lora = ft.LoraSettings(lora_r=4, lora_dropout=0.0)
    peft_model = ft.add_lora(model, lora)
    with torch.no_grad():  # a nonzero B, so that the A matrices get gradients too
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02, generator=torch.Generator().manual_seed(hash(n) % 2**31))
    import bitsandbytes.functional as F

    w_before = F.dequantize_4bit(layers[0].weight.data, layers[0].weight.quant_state).clone()
    generate(peft_model, tok, chat_messages("How do I sort an array?"), max_new_tokens=2)
    assert sum(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers) == len(layers)

    enc, _ = ft.encode_pairs(tok, PAIRS[:2], 128)
    batch = ft.collate(enc, tok.pad_token_id)
    trapped_loss, trapped = _lora_grads(peft_model, batch)  # the silent failure, measured before repairing it

    assert qz.disarm_cpu_bf16_repack(peft_model) == len(layers)
    generate(peft_model, tok, chat_messages("How do I sort an array?"), max_new_tokens=2)  # no repack any more
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)
    w_after = F.dequantize_4bit(layers[0].weight.data, layers[0].weight.quant_state)
    shift = float((w_after - w_before).norm() / w_before.norm())
    assert shift < 1e-2, f"unpacking moved the weights by {shift:.1e} (relative)"
    loss4, grads4 = _lora_grads(peft_model, batch)

    loss32, grads32 = _lora_grads(ft.dequantized_reference(peft_model, lora), batch)

    assert grads4.keys() == grads32.keys() and len(grads4) == 2 * len(layers)  # lora_A and lora_B of every 4-bit layer
    assert abs(loss4 - loss32) < 1e-5 * abs(loss32)
    err = _rel_err(grads4, grads32)
    assert err < 1e-5, f"LoRA gradients on the 4-bit model differ from the dequantized fp32 model: rel err {err:.2e}"
    assert _rel_err(trapped, grads32) > 1e-2 or abs(trapped_loss - loss32) > 1e-2, \
        "the simulated trap did not change the gradients: this test would not catch it"
    print(f"grad rel err after generate(): {err:.2e} (trapped, before repair: {_rel_err(trapped, grads32):.2e}); "
          f"weights moved by unpacking: {shift:.1e}")


# --- training ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_few_real_4bit_training_steps_lower_the_loss(tok):
    model, tok4, reason = qz.load_base(quantization="4bit", compute_dtype="float32")
    assert "4-bit NF4" in reason
    model = ft.add_lora(model, ft.LoraSettings(lora_r=8, lora_dropout=0.0))
    train = ft.TrainSettings(steps=4, lr=1e-3, batch_size=3, max_length=160, eval_every=2, quantization="4bit",
                             compute_dtype="float32")
    result = ft.train_adapter(model, tok4, PAIRS, train, eval_pairs=PAIRS, show_progress=False)
    steps, losses = zip(*result.eval_losses, strict=True)
    assert steps == (0, 2, 4) and result.steps == 4 and len(result.losses) == 4
    assert losses[-1] < 0.8 * losses[0], f"held-out loss did not fall: {losses}"
    assert result.peak_rss_mb > 100 and result.seconds_per_step > 0 and result.trainable_params > 0
    print(f"4-bit training: loss {losses[0]:.3f} -> {losses[-1]:.3f}, {result.seconds_per_step:.2f} s/step, "
          f"peak RSS {result.peak_rss_mb:.0f} MB")


def _plain_train(**kw):
    return ft.TrainSettings(steps=4, lr=1e-3, batch_size=2, max_length=128, eval_every=0, checkpoint_every=2,
                            quantization="none", compute_dtype="float32", **kw)


def _lora_state(model):
    from peft import get_peft_model_state_dict

    return {k: v.clone() for k, v in get_peft_model_state_dict(model).items()}


@pytest.mark.slow
def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    lora = ft.LoraSettings(lora_r=4, lora_dropout=0.1, target_modules=("q_proj", "v_proj"))  # dropout: RNG must resume too
    train = _plain_train()

    model, tok, _ = qz.load_base(quantization="none", compute_dtype="float32")
    straight = ft.train_adapter(ft.add_lora(model, lora), tok, PAIRS, train, show_progress=False)
    expected = _lora_state(model)

    def stop_at_3(step, loss):
        if step == 3:
            raise KeyboardInterrupt

    model, tok, _ = qz.load_base(quantization="none", compute_dtype="float32")
    with pytest.raises(KeyboardInterrupt):
        ft.train_adapter(ft.add_lora(model, lora), tok, PAIRS, train, checkpoint_dir=tmp_path, run_key="k",
                         show_progress=False, callback=stop_at_3)
    assert json.loads((tmp_path / "latest" / "state.json").read_text())["step"] == 3  # saved on interrupt
    model, tok, _ = qz.load_base(quantization="none", compute_dtype="float32")
    resumed = ft.train_adapter(ft.add_lora(model, lora, seed=99), tok, PAIRS, train, checkpoint_dir=tmp_path,
                               run_key="k", show_progress=False)
    assert resumed.resumed_from == 3 and resumed.steps == 4 and len(resumed.step_times) == 4  # the log carries over
    assert resumed.step_tokens == straight.step_tokens and len(straight.step_tokens) == 4  # so do the token counts
    assert all(k <= p for k, p in zip(straight.step_tokens, straight.step_padded, strict=True))
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)
    got = _lora_state(model)
    assert all(torch.allclose(got[k], expected[k], atol=1e-6) for k in expected)

    other = ft.train_adapter(ft.add_lora(model, lora), tok, PAIRS, dataclasses.replace(train, steps=1),
                             checkpoint_dir=tmp_path, run_key="other", show_progress=False)
    assert other.resumed_from == 0 and other.steps == 1  # a checkpoint of another run is never resumed


# --- adapters ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A plain-LoRA adapter trained 3 steps (fp32: quick), saved; and the logits of base and tuned on a fixed input."""
    path = tmp_path_factory.mktemp("adapter") / "tuned"
    model, tok, reason = qz.load_base(quantization="none", compute_dtype="float32")
    ids = tok("Answer: use np.float64", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base_logits = model(ids).logits
    model = ft.add_lora(model, TINY)
    ft.train_adapter(model, tok, PAIRS, _plain_train(), show_progress=False)
    with torch.no_grad():
        tuned_logits = model(ids).logits
    ad.save_adapter(model, path, {"note": "test"})
    return path, ids, base_logits, tuned_logits


@pytest.mark.slow
def test_adapter_round_trip_switch_and_merge(trained):
    from ragft.generation.models import load_llm

    path, ids, base_logits, tuned_logits = trained
    assert not torch.allclose(base_logits, tuned_logits, atol=1e-3), "training did not change the model"
    assert (path / "COMPLETE").exists() and ad.adapter_info(path)["base_model"] == "smollm2-135m"
    model, tok = ad.load_tuned(path)
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, tuned_logits, atol=1e-5)  # reload: identical
        with ad.adapter_off(model):
            assert torch.allclose(model(ids).logits, base_logits, atol=1e-5)  # off: the base, without reloading
        assert torch.allclose(model(ids).logits, tuned_logits, atol=1e-5)  # and back on
    merged = ad.merge_adapter(path)
    assert not hasattr(merged, "peft_config")
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, tuned_logits, atol=1e-4)

    other, _ = load_llm("smollm2-135m")
    other.config.name_or_path = "qwen2.5-coder-0.5b"
    with pytest.raises(ad.AdapterMismatch, match="trained on base model 'smollm2-135m'.*this model is 'qwen2.5-coder-0.5b'"):
        ad.load_adapter(other, path)


@pytest.mark.slow
def test_a_failed_save_leaves_no_half_written_adapter(trained, tmp_path, monkeypatch):
    path, *_ = trained
    model, _ = ad.load_tuned(path)
    target = tmp_path / "adapter"

    def disk_full(self, out, **kw):
        (out / "adapter_model.safetensors").write_bytes(b"\0" * 1000)  # part of the file made it to disk ...
        raise OSError(28, "No space left on device")  # ... then the disk filled up

    monkeypatch.setattr(type(model), "save_pretrained", disk_full)
    with pytest.raises(OSError, match="No space"):
        ad.save_adapter(model, target)
    assert os.listdir(tmp_path) == []  # neither the adapter folder nor its temporary sibling


@pytest.mark.slow
def test_train_or_load_adapter_caches_and_reuses(cache, monkeypatch):
    train = _plain_train()
    out = ft.train_or_load_adapter(PAIRS, TINY, train, show_progress=False, verbose=False)
    log = ft.read_training_log(out)
    assert (out / "COMPLETE").exists() and log["steps"] == 4 and len(log["losses"]) == 4
    assert ad.adapter_info(out)["data_hash"] == ft.data_hash(PAIRS)

    def no_training(*a, **k):
        raise AssertionError("retrained although an adapter for these inputs exists")

    monkeypatch.setattr(ft, "load_base", no_training)
    assert ft.train_or_load_adapter(PAIRS, TINY, train, show_progress=False, verbose=False) == out  # instant
    half = ft.train_or_load_adapter(PAIRS, TINY, dataclasses.replace(train, steps=2),
                                    show_progress=False, verbose=False)  # step 2 of the 4-step run: no training
    assert ft.read_training_log(half)["losses"] == log["losses"][:2]
    with pytest.raises(AssertionError, match="retrained"):  # other data is another adapter
        ft.train_or_load_adapter(PAIRS[:-1], TINY, train, show_progress=False, verbose=False)


# --- the adapter on/off widget --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_compare_adapter_and_its_widget(trained):
    from ragft.ui import widgets

    path, *_ = trained
    model, tok = ad.load_tuned(path)
    df = compare_adapter(model, tok, "What does `np.argsort` do?", max_new_tokens=6)
    assert list(df["arm"]) == ["base", "tuned"] and {"answer", "compliant", "abstained", "seconds"} <= set(df.columns)
    w = widgets.adapter_comparison_widget(model, tok, questions=["What does `np.fliplr` do?"], max_new_tokens=4)
    question, button, result = w.children
    button.click()  # runs compare_adapter synchronously
    assert "data-arm='base'" in result.value and "data-arm='tuned'" in result.value and "<pre" in result.value
    question.value = "  "
    button.click()
    assert "type a question" in result.value


# --- GPU: real bitsandbytes 4-bit with bf16 compute and a paged optimizer ----------------------------------------------
@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_qlora_bf16_paged_optimizer_lowers_the_loss():
    model, tok, reason = qz.load_base(quantization="4bit", compute_dtype="auto")
    assert "cuda" in reason and "bfloat16" in reason
    model = ft.add_lora(model, ft.LoraSettings(lora_r=8, lora_dropout=0.0))
    train = ft.TrainSettings(steps=6, lr=1e-3, batch_size=3, eval_every=3)
    assert type(ft.make_optimizer(model, train)).__name__ == "PagedAdamW32bit"
    result = ft.train_adapter(model, tok, PAIRS, train, eval_pairs=PAIRS, show_progress=False)
    assert result.eval_losses[-1][1] < 0.8 * result.eval_losses[0][1]
    print(f"GPU 4-bit bf16: {result.seconds_per_step:.3f} s/step, loss {result.eval_losses[0][1]:.3f} -> "
          f"{result.eval_losses[-1][1]:.3f}")


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_bf16_gradients_close_to_dequantized_reference(tok):
    """bf16 compute on CUDA: LoRA gradients within a few % of an fp32 model holding the dequantized weights."""
    model, _, _ = qz.load_base(quantization="4bit", compute_dtype="bfloat16")
    lora = ft.LoraSettings(lora_r=4, lora_dropout=0.0)
    peft_model = ft.add_lora(model, lora)
    enc, _ = ft.encode_pairs(tok, PAIRS[:2], 128)
    batch = {k: v.cuda() for k, v in ft.collate(enc, tok.pad_token_id).items()}
    _, g4 = _lora_grads(peft_model, batch)
    _, g32 = _lora_grads(ft.dequantized_reference(peft_model, lora).cuda(), batch)
    err = _rel_err({n: g.float() for n, g in g4.items()}, g32)
    assert err < 0.1, f"bf16 LoRA gradients {err:.2%} off"
    print(f"GPU bf16 grad rel err: {err:.2e}")
