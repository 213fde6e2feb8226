"""Every bad input to every `ragft` subcommand, as a table: each ends in ONE line `ragft: error: ...` naming the file or
setting and what to change, exit status 2, no traceback, and the files on disk exactly as they were. All are refused
before a model loads or a server starts (the index is made with the hashing encoder)."""

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import pytest

from ragft.ui.cli import main

SURROGATE = "sort \udcff array"  # what Python hands over for the bytes b"sort \xff array" in argv


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder of documents, its index, an empty folder, broken query files and damaged adapters, in one root."""
    root = tmp_path_factory.mktemp("bad")
    docs = root / "docs"
    docs.mkdir()
    (docs / "cats.md").write_text("# Cats\n\nCats purr when content. Cats eat fish and mice.\n")
    (docs / "dogs.txt").write_text("Dogs bark at strangers. Dogs love long walks in the park.")
    (root / "empty").mkdir()
    (root / "qdir").mkdir()
    assert main(["index", str(docs), "--out", str(root / "idx"), "--embedder", "hashing", "--quiet"]) == 0
    (root / "q_bytes.jsonl").write_bytes(b'{"qid": 1, "query": "cats"}\n{"qid": 2, "query": "sort \xff"}\n')
    (root / "q_escape.jsonl").write_text('{"qid": 1, "query": "cats"}\n{"qid": 2, "query": "sort \\udcff"}\n')
    (root / "pairs.jsonl").write_text('{"prompt": "q?", "completion": "a."}\n{not json\n')
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    whole = len(header).to_bytes(8, "little") + header + bytes(16)
    for name, files in {"ad_short": {"adapter_model.safetensors": whole[:-5]},
                        "ad_garbage": {"adapter_model.safetensors": b"<html>404 not found</html>" * 3},
                        "ad_config": {"adapter_config.json": b'{"base_model_name_or_path" "x"'},
                        "ad_meta": {"ragft_adapter.json": b'{"base_model": '}}.items():
        d = root / name
        d.mkdir()
        (d / "adapter_config.json").write_text("{}")
        for f, data in files.items():
            (d / f).write_bytes(data)
    return root


def snapshot(root: Path) -> dict:
    """Every file under root with a hash of its bytes (writer lock files, made by writers that queued, left out)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


NO_ONNX = importlib.util.find_spec("onnxruntime") is None
IDX = ["{root}/idx"]
CASES = [
    # index
    (["index", "{root}/docs", "--out", "{root}/idx"], "already exists"),
    (["index", "{root}/empty", "--out", "{root}/new"], "no usable documents"),
    (["index", "{root}/missing.jsonl", "--out", "{root}/new"], "no corpus at"),
    (["index", "{root}/nothing", "--out", "{root}/new"], "no such file or folder"),
    (["index", "{root}/docs", "--out", "{root}/new", "--chunk-size", "10", "--chunk-overlap", "20"], "chunk_overlap"),
    (["index", "{root}/docs", "--out", "{root}/new", "--chunk-size", "0"], "--chunk-size must be at least 1"),
    (["index", "{root}/docs", "--out", "{root}/new", "--chunk-overlap", "-1"], "--chunk-overlap must be at least 0"),
    (["index", "{root}/docs", "--out", "{root}/new", "--M", "1"], "--M must be at least 2"),
    (["index", "{root}/docs", "--out", "{root}/new", "--ef", "nan"], "--ef takes a whole number"),
    (["index", "{root}/docs", "--out", "{root}/new", "--chunker", "nope"], "invalid choice"),
    (["index", "2.4.6", "--out", "{root}/new", "--change-notes-since", "2.4.6"], "is SOURCE's own version"),
    (["index", "{root}/docs", "--out", "{root}/idx", "--backend", "pgvector"], "is not a pgvector index pointer"),
    (["index", "{root}/docs", "--out", "{root}/new\udcff"], "--out \"{root}/new\\xff\" is not valid UTF-8"),
    pytest.param(["index", "{root}/docs", "--out", "{root}/pg", "--backend", "pgvector", "--embedding-backend", "onnx"],
                 "needs onnxruntime", marks=pytest.mark.skipif(not NO_ONNX, reason="the onnx extra is installed")),
    # update
    (["update", "{root}/nowhere", "{root}/docs"], "no index at"),
    (["update", *IDX, "{root}/empty"], "no usable documents"),
    (["update", *IDX, "{root}/nothing"], "no such file or folder"),
    (["update", *IDX, "numpy-migration", "--change-notes-since", "1.26.4"], "SOURCE must be one NumPy version"),
    # search
    (["search", *IDX, "--query", "  "], "empty query"),
    (["search", "{root}/nowhere", "--query", "x"], "no index at"),
    (["search", "{root}/idx\udcff", "--query", "x"], "PATH \"{root}/idx\\xff\" is not valid UTF-8"),
    (["search", *IDX, "--query", SURROGATE], "--query \"sort \\xff array\" is not valid UTF-8 (byte 0xff"),
    (["search", *IDX, "--query", "x", "-k", "0"], "-k must be at least 1"),
    (["search", *IDX, "--query", "x", "-k", "2.5"], "-k takes a whole number"),
    (["search", *IDX, "--query", "x", "--fusion-weight", "1.5"], "--fusion-weight must be in [0, 1]"),
    (["search", *IDX, "--query", "x", "--threshold", "nan"], "--threshold must be a finite number"),
    (["search", *IDX, "--query", "x", "--threshold", "inf"], "--threshold must be a finite number"),
    (["search", *IDX, "--query", "x", "--ef", "0"], "--ef must be at least 1"),
    (["search", *IDX, "--query", "x", "--mode", "nope"], "invalid choice"),
    (["search", *IDX], "one of the arguments --query --queries is required"),
    (["search", *IDX, "--queries", "{root}/q_bytes.jsonl"], "q_bytes.jsonl:2: not UTF-8 text (byte 0xff"),
    (["search", *IDX, "--queries", "{root}/q_escape.jsonl"], "q_escape.jsonl:2: not valid UTF-8 text"),
    (["search", *IDX, "--queries", "{root}/qdir"], "is a folder"),
    (["search", *IDX, "--queries", "{root}/nope.jsonl"], "no such queries file"),
    # ask: all refused before the model loads
    (["ask", *IDX, "   "], "empty question"),
    (["ask", *IDX, SURROGATE], "the question \"sort \\xff array\" is not valid UTF-8 (byte 0xff at character 6)"),
    (["ask", "{root}/nowhere", "q?"], "no index at"),
    (["ask", *IDX, "q?", "-k", "0"], "-k must be at least 1"),
    (["ask", *IDX, "q?", "--threshold", "nan"], "--threshold must be a finite number"),
    (["ask", *IDX, "q?", "--contrast", "-1"], "--contrast must be at least 0"),
    (["ask", *IDX, "q?", "--contrast", "inf"], "--contrast must be a finite number"),
    (["ask", *IDX, "q?", "--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
    (["ask", *IDX, "q?", "--max-prompt-tokens", "0"], "--max-prompt-tokens must be at least 1"),
    (["ask", *IDX, "q?", "--adapter", "{root}/empty"], "holds no adapter"),
    (["ask", *IDX, "q?", "--adapter", "{root}/ad_short"], "ad_short/adapter_model.safetensors is truncated"),
    (["ask", *IDX, "q?", "--adapter", "{root}/ad_garbage"], "ad_garbage/adapter_model.safetensors is truncated or not"),
    (["ask", *IDX, "q?", "--adapter", "{root}/ad_config"], "ad_config/adapter_config.json is truncated or corrupted"),
    (["ask", *IDX, "q?", "--adapter", "{root}/ad_meta"], "ad_meta/ragft_adapter.json is truncated or corrupted"),
    # train: all refused before the model loads
    (["train", "--steps", "0"], "--steps must be at least 1"),
    (["train", "--lr", "0"], "--lr must be above 0"),
    (["train", "--lr", "1e9"], "--lr must be at most 1"),
    (["train", "--lr", "nan"], "--lr must be a finite number"),
    (["train", "--lr", "-0.1"], "--lr must be above 0"),
    (["train", "--lora-alpha", "0"], "--lora-alpha must be at least 1"),
    (["train", "--lora-r", "0"], "--lora-r must be at least 1"),
    (["train", "--pairs", "{root}/nope.jsonl"], "no such pairs file"),
    (["train", "--pairs", "{root}/qdir"], "--pairs {root}/qdir is a folder"),
    (["train", "--pairs", "{root}/pairs.jsonl"], "pairs.jsonl:2: not valid JSON"),
    (["nope"], "invalid choice"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None)
def test_bad_input_is_one_line_status_2_and_changes_nothing(world, capsys, argv, message):
    before = snapshot(world)
    argv = [a.format(root=world) for a in argv]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse refuses at parse time
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith("ragft: error: ") and "Traceback" not in err and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message.format(root=world) in err, err
    assert snapshot(world) == before
    assert not list(world.glob(".*")) or all(p.name.endswith(".lock") for p in world.glob(".*"))  # no temp folders


def test_skip_bad_lines_skips_a_line_that_is_not_utf8(world, capsys):
    assert main(["search", str(world / "idx"), "--queries", str(world / "q_bytes.jsonl"), "--json",
                 "--skip-bad-lines"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(x)["qid"] for x in out.splitlines()] == [1]
    assert "skipped q_bytes.jsonl:2: not UTF-8 text" in err


def test_a_file_name_that_is_not_utf8_is_listed_and_skipped(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("Cats purr.")
    with open(os.path.join(os.fsencode(docs), b"bad\xff.txt"), "w") as f:
        f.write("Dogs bark.")
    for chunker in ("structure", "fixed"):
        code = main(["index", str(docs), "--out", str(tmp_path / chunker), "--embedder", "hashing", "--quiet",
                     "--chunker", chunker])
        err = capsys.readouterr().err
        assert code == 0, err
        assert "bad\\xff.txt: skipped: the file name is not valid UTF-8 (rename the file)" in err
        assert "indexed 1 documents" in err
    code = main(["update", str(tmp_path / "fixed"), str(docs), "--quiet"])
    assert code == 0 and "0 added, 0 removed, 0 changed, 1 unchanged" in capsys.readouterr().err


def test_a_newline_in_a_file_name_does_not_split_the_search_table(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "two\nlines.md").write_text("Cats purr when content.")
    assert main(["index", str(docs), "--out", str(tmp_path / "idx"), "--embedder", "hashing", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", str(tmp_path / "idx"), "--query", "cats\npurr", "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [out.splitlines()[0], out.splitlines()[1]] and "two\\nlines.md#0" in out
    assert out.startswith("# cats\\npurr")


def test_lr_zero_is_refused_not_replaced_by_the_default():
    """`if args.lr` read 0 as "not given": the run trained at 2e-3 and was cached as the default run."""
    from ragft.ui.cli import build_parser

    assert build_parser().parse_args(["train", "--lr", "1e-4"]).lr == 1e-4
    assert build_parser().parse_args(["train"]).lr is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--lr", "0"])


def test_truncate_question_takes_text_that_was_not_utf8(small_tokenizer):
    from ragft.generation.decoding import truncate_question

    text, cut = truncate_question(small_tokenizer, SURROGATE, 64)
    assert text == "sort \ufffd array" and not cut
