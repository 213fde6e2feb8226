import json

import pytest

from ragft.core.io import DataError, atomic_path, read_jsonl
from ragft.data import corpus, datasets


def test_jsonl_malformed_lines_are_reported_with_numbers(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text('{"prompt": "a", "completion": "b"}\nnot json\n[1, 2]\n\n{"prompt": "", "completion": "x"}\n'
                 '{"question": "q", "answer": "A"}\n')
    with pytest.raises(DataError) as e:
        datasets.load_train_pairs(p)
    msg = str(e.value)
    assert "pairs.jsonl:2: not valid JSON" in msg
    assert "pairs.jsonl:3: expected a JSON object" in msg
    assert "pairs.jsonl:5: no non-empty prompt" in msg
    pairs, report = datasets.load_train_pairs(p, on_error="skip")
    assert [x["prompt"] for x in pairs] == ["a", "q"]
    assert [w for w, _ in report.problems] == ["pairs.jsonl:2", "pairs.jsonl:3", "pairs.jsonl:5"]


def test_empty_training_file_is_an_error(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("\n")
    with pytest.raises(DataError, match="no usable training pairs"):
        datasets.load_train_pairs(p, on_error="skip")


def test_read_jsonl_required_fields_and_non_utf8(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"doc_id": "a", "text": "x"}\n{"doc_id": "b"}\n')
    rows, rep = read_jsonl(p, required=("doc_id", "text"), on_error="skip")
    assert len(rows) == 1 and rep.problems == [("c.jsonl:2", "missing or empty field(s): text")]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        read_jsonl(bad)


def test_folder_loader_reports_every_skipped_file(tmp_path):
    (tmp_path / "guide").mkdir()
    (tmp_path / "guide" / "intro.md").write_text("# Intro\nHello")
    (tmp_path / "page.html").write_text("<html><script>x=1</script><p>Fish &amp; chips</p></html>")
    (tmp_path / "notes.txt").write_text("plain")
    (tmp_path / "empty.rst").write_text("   ")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "data.csv").write_text("a,b")
    docs, report = corpus.load_folder(tmp_path)
    assert sorted(d.doc_id for d in docs) == ["guide/intro.md", "notes.txt", "page.html"]
    assert next(d for d in docs if d.doc_id == "page.html").text == "Fish & chips"
    skipped = dict(report.problems)
    assert set(skipped) == {"empty.rst", "latin1.txt", "data.csv"}
    assert "not UTF-8" in skipped["latin1.txt"] and "empty" in skipped["empty.rst"]


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="empty"):
        corpus.load_folder(tmp_path)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps({"ok": 1}))
    assert json.loads(target.read_text()) == {"ok": 1}
