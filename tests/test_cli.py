"""The `ragft` command end to end: index, search (--json) and update on a small folder, `ask` on six NumPy documents
with the real small model, and every bad input each must report."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ragft.core.house import ABSTAIN_ANSWER
from ragft.core.io import write_jsonl
from ragft.data.corpus import load_corpus
from ragft.generation.models import is_available
from ragft.ui.cli import main

ASK_DOC_IDS = ["numpy.argsort", "numpy.sort", "numpy.linalg.norm", "numpy.cumsum", "removed:numpy.float_",
               "numpy.float64"]


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "cats.md").write_text("# Cats\n\nCats purr when content. They sleep a lot.\n\n## Food\n\nCats eat fish and mice.\n")
    (d / "dogs.txt").write_text("Dogs bark at strangers.\nDogs love long walks in the park.")
    (d / "sub" / "birds.html").write_text("<html><body><h1>Birds</h1><p>Birds fly &amp; sing at dawn.</p></body></html>")
    (d / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (d / "empty.rst").write_text("  \n")
    (d / "photo.png").write_bytes(b"\x89PNG")
    return d


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_index_search_update_end_to_end(folder, tmp_path, capsys):
    idx = tmp_path / "idx"
    code, _, err = run(capsys, "index", folder, "--out", idx, "--embedder", "hashing", "--quiet")
    assert code == 0, err
    for skipped in ("latin1.txt: skipped: not UTF-8", "empty.rst: skipped: empty", "photo.png: skipped: suffix .png"):
        assert skipped in err
    assert "indexed 3 documents" in err

    code, out, _ = run(capsys, "search", idx, "--query", "what do cats eat", "-k", "2", "--json")
    (line,) = out.strip().splitlines()
    row = json.loads(line)
    assert row["query"] == "what do cats eat"
    assert [r["chunk_id"] for r in row["results"]] == ["cats.md#1", "cats.md#0"]
    assert set(row["results"][0]) == {"doc_id", "chunk_id", "score", "text"}
    assert row["results"][0]["score"] >= row["results"][1]["score"]

    queries = tmp_path / "q.jsonl"
    queries.write_text('{"qid": "q1", "query": "birds singing"}\n\n{"qid": 2, "query": "dogs barking"}\n')
    for mode in ("dense", "bm25", "hybrid"):
        code, out, _ = run(capsys, "search", idx, "--queries", queries, "-k", "1", "--mode", mode, "--json")
        rows = [json.loads(x) for x in out.strip().splitlines()]
        assert [r["qid"] for r in rows] == ["q1", 2]
        assert rows[0]["results"][0]["doc_id"] == "sub/birds.html", mode

    code, out, _ = run(capsys, "search", idx, "--query", "cats", "-k", "3", "--threshold", "0.99", "--json")
    assert json.loads(out)["results"] == []

    (folder / "dogs.txt").write_text("Dogs bark at strangers and chase cats.")
    (folder / "sub" / "birds.html").unlink()
    (folder / "fish.md").write_text("Fish swim in schools.")
    code, _, err = run(capsys, "update", idx, folder, "--quiet")
    assert code == 0 and "1 added, 1 removed, 1 changed, 1 unchanged" in err
    code, out, _ = run(capsys, "search", idx, "--query", "swimming fish", "-k", "5", "--json")
    ids = [r["doc_id"] for r in json.loads(out)["results"]]
    assert "fish.md" in ids and "sub/birds.html" not in ids


@pytest.mark.parametrize("argv,message", [
    (["search", "{idx}", "--query", "  "], "empty query"),
    (["search", "{tmp}/nowhere", "--query", "x"], "no index at"),
    (["search", "{idx}", "--query", "x", "-k", "0"], "-k must be at least 1"),
    (["index", "{tmp}/empty", "--out", "{tmp}/i2"], "no usable documents"),
    (["index", "{docs}", "--out", "{idx}"], "already exists"),
    (["index", "{docs}", "--out", "{tmp}/i3", "--chunk-size", "10", "--chunk-overlap", "20"], "chunk_overlap"),
    (["index", "{tmp}/missing.jsonl", "--out", "{tmp}/i4"], "no corpus at"),
    (["update", "{idx}", "{tmp}/empty"], "no usable documents"),
])
def test_bad_input_is_a_clear_error(folder, tmp_path, capsys, argv, message):
    idx = tmp_path / "idx"
    assert run(capsys, "index", folder, "--out", idx, "--embedder", "hashing", "--quiet")[0] == 0
    (tmp_path / "empty").mkdir()
    argv = [a.format(idx=idx, tmp=tmp_path, docs=folder) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert err.startswith("ragft: error: ") and message in err and "Traceback" not in err


def test_malformed_query_lines_are_reported_with_line_numbers(folder, tmp_path, capsys):
    idx = tmp_path / "idx"
    run(capsys, "index", folder, "--out", idx, "--embedder", "hashing", "--quiet")
    q = tmp_path / "q.jsonl"
    q.write_text('{"qid": 1, "query": "cats"}\nnot json\n{"qid": 3}\n["a list"]\n{"qid": 5, "query": "dogs"}\n')
    code, out, err = run(capsys, "search", idx, "--queries", q, "--json")
    assert code == 2 and out == ""
    assert "3 malformed line(s)" in err and "q.jsonl:2" in err and "q.jsonl:3" in err and "q.jsonl:4" in err
    code, out, err = run(capsys, "search", idx, "--queries", q, "--json", "--skip-bad-lines")
    assert code == 0 and [json.loads(x)["qid"] for x in out.splitlines()] == [1, 5]
    assert "skipped q.jsonl:2" in err


def test_k_above_index_size_and_ef_below_k_are_reported(folder, tmp_path, capsys):
    idx = tmp_path / "idx"
    run(capsys, "index", folder, "--out", idx, "--embedder", "hashing", "--quiet")
    code, out, err = run(capsys, "search", idx, "--query", "cats", "-k", "50", "--ef", "2", "--json")
    assert code == 0 and len(json.loads(out)["results"]) == 4
    assert "more than the 4 chunks" in err and "--ef 2 is below -k 50" in err


def test_corrupted_index_is_refused(folder, tmp_path, capsys):
    idx = tmp_path / "idx"
    run(capsys, "index", folder, "--out", idx, "--embedder", "hashing", "--quiet")
    (idx / "chunks.jsonl").write_text("garbage")
    code, _, err = run(capsys, "search", idx, "--query", "cats")
    assert code == 2 and "truncated or corrupted" in err


@pytest.mark.slow
@pytest.mark.skipif(not is_available("minilm"), reason="MiniLM package not installed")
def test_the_installed_command_with_minilm(folder, tmp_path):
    idx = tmp_path / "idx"
    cmd = [sys.executable, "-m", "ragft.ui.cli"]
    done = subprocess.run(cmd + ["index", str(folder), "--out", str(idx), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(cmd + ["search", str(idx), "--query", "which animal makes a purring sound?", "-k", "1", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["doc_id"] == "cats.md"


# --- ragft ask --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ask_index(tmp_path_factory):
    """An index of six NumPy 2.4.6 documents, made by `ragft index` from a corpus JSONL with the hashing encoder."""
    tmp = tmp_path_factory.mktemp("ask")
    by_id = {d.doc_id: d for d in load_corpus("2.4.6")}
    write_jsonl(tmp / "docs.jsonl", [by_id[i].to_json() for i in ASK_DOC_IDS])
    assert main(["index", str(tmp / "docs.jsonl"), "--out", str(tmp / "index"), "--embedder", "hashing", "--quiet"]) == 0
    return tmp / "index"


def test_ask_is_a_ragft_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["ask", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--no-retrieval", "--adapter", "--threshold", "--json", "-k", "--passage-order",
                                             "--contrast", "--name-check"))


@pytest.mark.slow
def test_ask_json(ask_index, capsys):
    code, out, _ = run(capsys, "ask", ask_index, "What replaces np.float_?", "-k", "2", "--max-new-tokens", "6", "--json", "--threshold", "off",
                       "--passage-order", "best_first")
    assert code == 0
    out = json.loads(out)
    assert out["answer"] and len(out["passages"]) == 2 and {"retrieve_s", "prompt_s", "generate_s"} <= set(out["timings"])
    waits = out["waits_s"]  # what the user waited, loading included: the interactive goal is read from these
    assert set(waits) == {"command", "index", "model"} and waits["command"] >= waits["index"] + waits["model"] > 0
    assert out["quote"] == ""  # the base model writes no quote line


@pytest.mark.slow
def test_ask_text_and_threshold_abstains(ask_index, capsys):
    code, out, _ = run(capsys, "ask", ask_index, "What replaces np.float_?", "--threshold", "1.5", "--max-new-tokens", "4")
    assert code == 0
    assert out.startswith(ABSTAIN_ANSWER) and "no passage above the threshold" in out and "Time: retrieve" in out
    assert re.search(r"Wait: [\d.]+ s from the command to the whole answer \(loading the index [\d.]+ s, the model", out)


@pytest.mark.slow
def test_ask_name_check_abstains_on_an_api_no_passage_documents(ask_index, capsys):
    code, out, err = run(capsys, "ask", ask_index, "What replaces `np.float_frobnicate`?", "--name-check", "--threshold", "off",
                         "--max-new-tokens", "4")
    assert code == 0 and out.startswith(ABSTAIN_ANSWER) and "Sources:" in out  # it shows what was retrieved instead
    assert "no retrieved passage documents numpy.float_frobnicate" in err and "name check" in err


@pytest.mark.parametrize("argv, message", [
    (["ask", "{index}", "   "], "empty question"),
    (["ask", "{tmp}/nowhere", "q?"], "no index at"),
    (["ask", "{index}", "q?", "-k", "0"], "-k must be at least 1"),
    (["ask", "{index}", "q?", "--contrast", "-1"], "--contrast must be at least 0"),
    (["ask", "{index}", "q?", "--embedder", "hashing-128"], "was built with"),
    (["ask", "{index}", "q?", "--adapter", "{adapter}"], "trained on base model"),
    (["ask", "{index}", "q?", "--adapter", "{tmp}"], "holds no adapter"),
    (["ask", "{index}", "q?", "--model", "nope"], "unknown model"),
])
def test_ask_bad_input_is_one_line_and_status_2(ask_index, fake_adapter, tmp_path, capsys, argv, message):
    adapter = fake_adapter(base_model="qwen2.5-coder-0.5b")
    argv = [a.format(index=ask_index, tmp=tmp_path, adapter=adapter) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("ragft: error:") and message in err and "Traceback" not in err


# --- train ------------------------------------------------------------------------------------------------------------
def _pairs_file(tmp_path, rows):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("argv, message", [
    (["train", "--steps", "0"], "--steps must be at least 1"),
    (["train", "--pairs", "{tmp}/nope.jsonl"], "no such pairs file"),
    (["train", "--pairs", "{bad}"], "pairs.jsonl:2: not valid JSON"),
])
def test_train_bad_input_is_one_line_and_status_2(tmp_path, capsys, argv, message):
    bad = _pairs_file(tmp_path, [{"prompt": "q?", "completion": "a."}, "{not json"])
    argv = [a.format(tmp=tmp_path, bad=bad) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ragft: error:") and message in err and "Traceback" not in err


@pytest.mark.slow  # two real LoRA steps on the small model
def test_train_prints_an_adapter_that_ask_accepts_and_a_repeat_comes_from_the_cache(tmp_path, capsys):
    rows = [{"prompt": f"What does `np.cli_test_{i}` do?", "answer": f"Answer: test {i}.\nSource: none"} for i in range(6)]
    path = _pairs_file(tmp_path, [*rows, "{not json"])
    argv = ["train", "--pairs", str(path), "--steps", "2", "--skip-bad-lines", "--quiet"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    adapter = out.strip()
    assert "6 pairs, 2 steps" in err and "skipped" in err
    assert (Path(adapter) / "adapter_config.json").exists()
    assert main(argv) == 0 and capsys.readouterr().out.strip() == adapter  # same data and settings: the cached adapter


def test_update_to_a_new_numpy_release_can_write_its_change_notes(folder, tmp_path, capsys):
    idx = tmp_path / "idx"
    code, _, err = run(capsys, "index", "1.26.4", "--out", idx, "--embedder", "hashing", "--quiet")
    assert code == 0, err
    code, _, err = run(capsys, "update", idx, "2.4.6", "--change-notes-since", "1.26.4", "--quiet")
    assert code == 0 and "change notes since NumPy 1.26.4: 62 of 1110 documents" in err, err
    question = "Which keyword argument did `np.linalg.cholesky` gain in NumPy 2.x that it did not have in NumPy 1.26?"
    code, out, _ = run(capsys, "search", idx, "--query", question, "-k", "3", "--mode", "bm25", "--json")
    hits = json.loads(out)["results"]
    assert any(h["doc_id"] == "numpy.linalg.cholesky" and "Parameter changes" in h["text"] and "`upper`" in h["text"]
               for h in hits), hits
    # the notes compare two NumPy releases: anything else is refused, before loading, with one line and status 2
    for argv, message in [
            (["index", folder, "--out", tmp_path / "x", "--change-notes-since", "1.26.4"], "SOURCE must be one NumPy version"),
            (["index", "2.4.6", "--out", tmp_path / "y", "--change-notes-since", "2.4.6"], "is SOURCE's own version"),
            (["update", idx, "numpy-migration", "--change-notes-since", "1.26.4"], "SOURCE must be one NumPy version")]:
        code, _, err = run(capsys, *argv, "--quiet")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
