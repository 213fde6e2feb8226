"""The pgvector retriever against a REAL embedded PostgreSQL (started and stopped by a session fixture): same ranking as
hnswlib at exhaustive ef, sync equal to a fresh build, atomic syncs under a failure, two writers and four readers, the
one-line errors for bad settings, and the embedded server's lock and crash recovery."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import psycopg
import pytest

from ragft.data.corpus import Document, load_corpus
from ragft.retrieval.embeddings import HashingEncoder
from ragft.retrieval.hnsw import HnswConfig
from ragft.retrieval.pgvector import server as pg_server
from ragft.retrieval.pgvector.search import MAX_EF_SEARCH
from ragft.retrieval.pgvector.store import EmbeddedServer, PgStoreError, PgVectorIndex, connect
from ragft.retrieval.retrievers import build_retriever
from ragft.ui.cli import main

FAST = HnswConfig(M=16, ef_construction=40)  # row-by-row HNSW inserts (sync) cost ~ef_construction: keep tests quick
QUERIES = ["sort an array along an axis", "absolute value of each element", "indices of the maximum value",
           "round to the nearest integer", "trigonometric inverse cosine", "test whether all elements are true",
           "evenly spaced values within an interval", "append values to the end of an array"]


def server_folder():
    """A folder outside pytest's tmp root: when tests run as root, the server runs as another user (pgserver's rule),
    and every pytest session (another worker's too) resets that root to mode 0700, which would lock the server out."""
    return Path(tempfile.mkdtemp(prefix="ragft-pg-test-"))


@pytest.fixture(scope="session")
def server():
    folder = server_folder()
    try:
        with EmbeddedServer(folder) as srv:
            yield srv
        assert srv.pid is None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def docs():
    return load_corpus("2.4.6")[:60]


@pytest.fixture(scope="module")
def encoder():
    return HashingEncoder()


def edited(docs, n_changed=5):
    """docs[10:] plus 10 new ones, n_changed of the kept ones edited: adds, removes and changes at once."""
    extra = load_corpus("2.4.6")[60:70]
    kept = [Document(d.doc_id, d.text + " Revised in this release.", d.title, d.metadata) if i < n_changed else d
            for i, d in enumerate(docs[10:])]
    return kept + extra


def state(index):
    """Everything a reader can observe: documents with hashes, chunks with their text, and the vectors."""
    chunks = sorted((c.chunk_id, c.doc_id, c.embed_text) for c in index.chunks)
    order = np.argsort([c.chunk_id for c in index.chunks], kind="stable")
    return index.doc_hashes(), chunks, index.vectors()[order]


def same_ranking(a, b):
    """Equal scores rank by rank; chunks tied on a score may come in either order (and the last tie may be cut)."""
    sa, sb = [round(h.score, 5) for h in a], [round(h.score, 5) for h in b]
    assert sa == pytest.approx(sb, abs=2e-5)
    groups = {}
    for h in a:
        groups.setdefault(round(h.score, 4), [set(), set()])[0].add(h.chunk_id)
    for h in b:
        groups.setdefault(round(h.score, 4), [set(), set()])[1].add(h.chunk_id)
    last = min(groups)
    for score, (ia, ib) in groups.items():
        if score != last:
            assert ia == ib, f"different chunks at score {score}: {ia ^ ib}"


def test_search_equals_hnswlib_at_exhaustive_ef(server, docs, encoder):
    dense = build_retriever(docs, "dense", embedder=encoder, show_progress=False)
    with PgVectorIndex.from_dense(dense, "ranking", server.url, replace=True) as pg:
        assert len(pg) == len(dense) and pg.doc_hashes() == dense.doc_hashes()
        exhaustive = len(dense)  # ef >= the number of chunks: both HNSW searches are exact
        assert exhaustive < MAX_EF_SEARCH
        hn = dense.search_batch(QUERIES, top_k=10, ef=exhaustive)
        for mode in ("dense", "exact"):
            got = pg.search_batch(QUERIES, top_k=10, ef=exhaustive, mode=mode)
            for a, b in zip(got, hn, strict=True):
                assert len(a) == 10
                same_ranking(a, b)
        assert got[0][0].metadata["section"] == hn[0][0].metadata["section"]
        assert got[0][0].text == hn[0][0].text


def test_build_then_lexical_and_hybrid_search(server, docs, encoder):
    with PgVectorIndex.build(docs, encoder, "modes", server.url, replace=True, show_progress=False, config=FAST) as pg:
        lex = pg.search("argsort", top_k=5, mode="lexical")
        assert len(lex) == 5 and all("argsort" in h.text.lower() for h in lex)
        assert [h.score for h in lex] == sorted((h.score for h in lex), reverse=True)
        # OR of the words: "numpy" alone matches every chunk, and ts_rank has no idf to tell that "argsort" is rarer
        either = pg.search("numpy.argsort", top_k=50, mode="lexical")
        assert len(either) == 50 and any("argsort" in h.text.lower() for h in either)
        assert pg.search("@@@ ???", top_k=5, mode="lexical") == []  # no word tokens: no lexical match, no error
        hyb = pg.search_batch(QUERIES, top_k=5, mode="hybrid")
        dense = pg.search_batch(QUERIES, top_k=50, mode="dense", ef=200)
        for hits, dl in zip(hyb, dense, strict=True):
            dense_rank = {h.chunk_id: h.rank for h in dl}
            for h in hits:
                # RRF score recomputed from the ranks the SQL reports, and the cosine from the dense list
                expected = sum(1 / (60 + h.metadata[k] + 1) for k in ("dense_rank", "lexical_rank") if k in h.metadata)
                assert h.score == pytest.approx(expected, rel=1e-9)
                if "dense_rank" in h.metadata:
                    assert h.metadata["dense_rank"] == dense_rank[h.chunk_id]
        thr = pg.search("sort an array along an axis", top_k=10, mode="hybrid", threshold=0.3)
        assert thr and all(h.metadata["cosine"] >= 0.3 for h in thr)
        only = pg.search("sort", top_k=5, mode="hybrid", version="1.26.4")
        assert only == []  # every document here is from 2.4.6: the SQL filter keeps none


def test_batched_search_equals_one_query_per_statement(server, docs, encoder):
    # two versions, so the SQL filter keeps some chunks and drops others
    old = [Document(f"old/{d.doc_id}", d.text, d.title, {**d.metadata, "version": "1.26.4"}) for d in docs[:20]]
    queries = QUERIES + ["numpy.argsort", "@@@ ???"]  # the last one has no word tokens: no lexical match (and for
    # the hashing encoder a zero vector, whose cosine distances are NaN)

    def view(results):
        return [[(h.chunk_id, h.rank, str(h.score), json.dumps(h.metadata, sort_keys=True)) for h in hits] for hits in results]

    with PgVectorIndex.build(docs + old, encoder, "batched", server.url, replace=True, show_progress=False,
                             config=FAST) as pg:
        for mode in ("dense", "exact", "lexical", "hybrid"):
            for version in (None, "1.26.4"):
                one = [pg.search(q, top_k=7, ef=64, mode=mode, version=version) for q in queries]
                for batch in (3, 256):  # several statements (the last one short), and all queries in one
                    got = pg.search_batch(queries, top_k=7, ef=64, mode=mode, version=version, batch=batch)
                    assert view(got) == view(one), (mode, version, batch)
                assert sum(map(len, one)) > 0, (mode, version)
                if version:
                    assert all(h.doc_id.startswith("old/") for hits in one for h in hits)
        assert pg.search_batch([], top_k=3) == []
        with pytest.raises(ValueError, match="batch"):
            pg.search_batch(queries, top_k=3, batch=0)

    vectors = encoder.encode([d.text for d in docs], show_progress=False)
    with PgVectorIndex.from_vectors(vectors, "batched_vectors", server.url, FAST, replace=True) as pg:
        sims1, ids1 = pg.search_vectors(vectors[:11], 5, ef=32, batch=1)
        for batch in (4, 256):
            sims, ids = pg.search_vectors(vectors[:11], 5, ef=32, batch=batch)
            assert ids == ids1
            np.testing.assert_array_equal(sims, sims1)
        assert [row[0] for row in ids1] == [str(i) for i in range(11)]  # each vector finds itself first
        np.testing.assert_allclose(sims1[:, 0], 1, atol=1e-5)


def test_sync_equals_fresh_build(server, docs, encoder):
    new_docs = edited(docs)
    with PgVectorIndex.build(docs, encoder, "synced", server.url, replace=True, show_progress=False, config=FAST) as pg, \
            PgVectorIndex.build(new_docs, encoder, "fresh", server.url, replace=True, show_progress=False, config=FAST) as fresh:
        report = pg.sync(new_docs, show_progress=False)
        assert (len(report.added), len(report.removed), len(report.changed)) == (10, 10, 5)
        hashes, chunks, vecs = state(pg)
        f_hashes, f_chunks, f_vecs = state(fresh)
        assert hashes == f_hashes and chunks == f_chunks
        np.testing.assert_allclose(vecs, f_vecs, atol=1e-6)
        again = pg.sync(new_docs, show_progress=False)
        assert (again.added, again.removed, again.changed, again.chunks_added) == ([], [], [], 0)
        for a, b in zip(pg.search_batch(QUERIES, 5, ef=1000), fresh.search_batch(QUERIES, 5, ef=1000), strict=True):
            same_ranking(a, b)


def test_sync_killed_half_way_leaves_previous_state(server, docs, encoder, monkeypatch):
    with PgVectorIndex.build(docs, encoder, "killed", server.url, replace=True, show_progress=False, config=FAST) as pg:
        before = state(pg)
        real_write = PgVectorIndex._write

        def write_then_die(self, conn, *args, **kwargs):
            real_write(self, conn, *args, **kwargs)  # the old rows are deleted and the new ones written...
            assert conn.execute(self._q("SELECT count(*) FROM {s}.docs")).fetchone()[0] == len(edited(docs))
            raise KeyboardInterrupt("killed before commit")  # ...and the process dies before COMMIT

        monkeypatch.setattr(PgVectorIndex, "_write", write_then_die)
        with pytest.raises(KeyboardInterrupt):
            pg.sync(edited(docs), show_progress=False)
        monkeypatch.undo()
        after = state(pg)
        assert after[0] == before[0] and after[1] == before[1]
        np.testing.assert_array_equal(after[2], before[2])
        assert pg.sync(edited(docs), show_progress=False).changed  # the connection is usable again


def counts(before, after):
    """(added, removed, changed) doc counts going from the documents `before` to `after`."""
    old, new = {d.doc_id: d.content_hash for d in before}, {d.doc_id: d.content_hash for d in after}
    return (len(new.keys() - old.keys()), len(old.keys() - new.keys()),
            sum(old[i] != new[i] for i in new.keys() & old.keys()))


def test_two_concurrent_syncs_end_in_one_of_the_two_states(server, docs, encoder):
    a_docs, b_docs = docs[:40], edited(docs)
    with PgVectorIndex.build(a_docs, encoder, "want_a", server.url, replace=True, show_progress=False, config=FAST) as want_a, \
            PgVectorIndex.build(b_docs, encoder, "want_b", server.url, replace=True, show_progress=False, config=FAST) as want_b:
        expected = [state(want_a)[:2], state(want_b)[:2]]
    for _ in range(2):
        base = PgVectorIndex.build(docs[20:], encoder, "two_writers", server.url, replace=True, show_progress=False, config=FAST)
        writers = [PgVectorIndex.open("two_writers", server.url, encoder) for _ in range(2)]
        barrier, errors, reports = threading.Barrier(2), [], {}
        threads = [threading.Thread(target=sync_after, args=(w, t, barrier, errors, reports, name))
                   for w, t, name in zip(writers, (a_docs, b_docs), "ab", strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        final = state(base)[:2]
        assert final in expected, "two writers left a mix of both corpora"
        # no false report: the first diffed from the start, the second from what the first committed
        last = "ab"[expected.index(final)]
        first = "ba"["ab".index(last)]
        target = {"a": a_docs, "b": b_docs}
        for name, before in ((first, docs[20:]), (last, target[first])):
            r = reports[name]
            assert (len(r.added), len(r.removed), len(r.changed)) == counts(before, target[name]), (name, str(r))
        for index in writers + [base]:
            index.close()


def sync_after(index, target, barrier, errors, reports, name):
    try:
        barrier.wait()
        reports[name] = index.sync(target, show_progress=False)
    except Exception as e:  # reported by the test
        errors.append(e)


def test_four_readers_during_syncs_never_see_a_partial_update(server, docs, encoder):
    a_docs, b_docs = docs, edited(docs)
    sig = {}
    for name, corpus in (("a", a_docs), ("b", b_docs)):
        with PgVectorIndex.build(corpus, encoder, f"readers_{name}", server.url, replace=True, show_progress=False, config=FAST) as pg:
            sig[name] = signature(pg._conn(), pg.schema)
    assert sig["a"] != sig["b"]
    writer = PgVectorIndex.build(a_docs, encoder, "readers", server.url, replace=True, show_progress=False, config=FAST)
    stop, seen, bad, hits_seen = threading.Event(), [], [], []

    def reader():
        with PgVectorIndex.open("readers", server.url, encoder) as index:
            conn = index._conn()
            while not stop.is_set():
                s = signature(conn, index.schema)
                seen.append(s == sig["a"])
                if s not in (sig["a"], sig["b"]):
                    bad.append(s)
                hits_seen.append(len(index.search("sort an array", top_k=5)))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            writer.sync(b_docs if i % 2 == 0 else a_docs, show_progress=False)
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        writer.close()
    assert not bad, f"{len(bad)} of {len(seen)} reads saw a partial update"
    assert True in seen and False in seen, "the readers did not overlap the syncs"
    assert len(seen) >= 24 and set(hits_seen) == {5}


def signature(conn, schema):
    """One statement, so one snapshot: each document's hash and its chunk count."""
    rows = conn.execute(f"SELECT d.doc_id, d.content_hash, count(c.id) FROM {schema}.docs d "
                        f"LEFT JOIN {schema}.chunks c ON c.doc_id = d.doc_id GROUP BY 1, 2 ORDER BY 1").fetchall()
    return tuple(rows)


# ---------------------------------------------------------------------------------------------------- bad settings
class OtherEncoder(HashingEncoder):
    """Same dimension as the index's encoder, another model: its vectors mean something else."""

    def __init__(self):
        super().__init__(384)
        self.model_id = "other-model-384"


def test_bad_settings_give_one_line_errors(server, docs, encoder, monkeypatch):
    PgVectorIndex.build(docs[:5], encoder, "guarded", server.url, replace=True, show_progress=False, config=FAST).close()
    cases = {
        "dimension": (lambda: PgVectorIndex.open("guarded", server.url, HashingEncoder(128)), "holds 384-d vectors"),
        "embedder": (lambda: PgVectorIndex.open("guarded", server.url, OtherEncoder()), "another embedder (hashing-bow-384)"),
        "missing": (lambda: PgVectorIndex.open("never_built", server.url), "no index named 'never_built'"),
        "exists": (lambda: PgVectorIndex.build(docs[:5], encoder, "guarded", server.url), "already exists"),
        "unreachable": (lambda: connect("postgresql://ragft@127.0.0.1:1/postgres"), "cannot reach PostgreSQL at ragft@127.0.0.1:1"),
        "database": (lambda: connect(server.url.replace("/postgres?", "/no_such_db?")), "create it"),
    }
    for name, (call, message) in cases.items():
        with pytest.raises(PgStoreError) as e:
            call()
        assert message in str(e.value), name
        assert "\n" not in str(e.value), name
    assert issubclass(PgStoreError, Exception)
    monkeypatch.setattr(pg_server, "EXTENSION", "ragft_no_such_extension")  # as on a server without pgvector
    with pytest.raises(PgStoreError, match="has no pgvector extension.*install pgvector"):
        connect(server.url)


def test_wrong_password_is_named(server):
    connect(server.url).close()  # the superuser creates pgvector, which ragft_pw may not: this test runs alone too
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS ragft_pw")
        conn.execute("CREATE ROLE ragft_pw LOGIN PASSWORD 'right-one'")
        hba = conn.execute("SHOW hba_file").fetchone()[0]
        original = open(hba).read()
        with open(hba, "w") as f:  # rewritten in place: owner and mode stay the server's
            f.write("local all ragft_pw scram-sha-256\n" + original)
        conn.execute("SELECT pg_reload_conf()")
        socket_dir = server.url.split("host=")[1]
        wrong = f"postgresql://ragft_pw:wrong@/postgres?host={socket_dir}"
        for _ in range(100):  # the reload is asynchronous: wait until the server asks for the password, rather
            try:              # than sleep for a fixed time and hope
                psycopg.connect(wrong).close()
            except psycopg.OperationalError:
                break
            time.sleep(0.1)
        try:
            with pytest.raises(PgStoreError, match="rejected the password: fix the password in RAGFT_DATABASE_URL"):
                connect(wrong)
            connect(f"postgresql://ragft_pw:right-one@/postgres?host={socket_dir}").close()
        finally:
            with open(hba, "w") as f:
                f.write(original)
            conn.execute("SELECT pg_reload_conf()")


@pytest.fixture
def pets(tmp_path):
    """A folder of two small documents, one Markdown and one plain text."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cats.md").write_text("# Cats\n\nCats purr when content. Cats eat fish and mice.\n")
    (folder / "dogs.txt").write_text("Dogs bark at strangers. Dogs love long walks in the park.")
    return folder


def test_cli_index_search_update_on_pgvector(server, pets, tmp_path, capsys):
    """`index --backend pgvector --out PATH` writes a pointer file at PATH: search and update follow it, no --backend."""
    folder, idx = pets, tmp_path / "cli_pets"
    db = ["--backend", "pgvector", "--db", server.url]
    assert main(["index", str(folder), "--out", str(idx), "--embedder", "hashing", "--quiet", "--force", *db]) == 0
    pointer = json.loads(idx.read_text())
    assert pointer["backend"] == "pgvector" and pointer["name"].startswith("cli_pets_")
    assert "password" not in (pointer["db"] or "")
    assert main(["search", str(idx), "--query", "what do cats eat", "-k", "1", "--json", "--mode", "hybrid"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["results"][0]["doc_id"] == "cats.md"
    (folder / "dogs.txt").unlink()
    assert main(["update", str(idx), str(folder), "--quiet"]) == 0
    assert "1 removed" in capsys.readouterr().err
    # an exact scan reads every row: no HNSW beam warning, and never a warning with a source line
    assert main(["search", str(idx), "--query", "cats", "-k", "100", "--mode", "exact"]) == 0
    err = capsys.readouterr().err
    assert "Warning" not in err and ".py:" not in err and all(x.startswith("ragft: ") for x in err.splitlines()), err
    assert main(["index", str(folder), "--out", str(idx), "--embedder", "hashing", "--quiet", *db]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["search", str(idx), "--query", "dogs", "--db", "postgresql://x@127.0.0.1:1/x"]) == 2
    assert capsys.readouterr().err.startswith("ragft: error: cannot reach PostgreSQL")


def test_cli_same_last_part_in_two_folders_makes_two_indexes(server, pets, tmp_path, capsys):
    """`--out a/idx` and `--out b/idx` used to name one table `idx` ("already exists", or one overwriting the other)."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "fish.md").write_text("Fish swim in schools.")
    db = ["--backend", "pgvector", "--db", server.url]
    for src, out in ((pets, tmp_path / "a" / "idx"), (other, tmp_path / "b" / "idx")):
        assert main(["index", str(src), "--out", str(out), "--embedder", "hashing", "--quiet", "--force", *db]) == 0
    names = {json.loads((tmp_path / x / "idx").read_text())["name"] for x in "ab"}
    assert len(names) == 2
    capsys.readouterr()
    for x, doc in (("a", "cats.md"), ("b", "fish.md")):
        assert main(["search", str(tmp_path / x / "idx"), "--query", "cats fish", "-k", "5", "--json"]) == 0
        ids = {r["doc_id"] for r in json.loads(capsys.readouterr().out)["results"]}
        assert doc in ids and ({"cats.md", "fish.md"} - {doc}).isdisjoint(ids), (x, ids)


@pytest.mark.slow  # loads the real small model
def test_cli_ask_on_pgvector(server, pets, capsys):
    db = ["--backend", "pgvector", "--db", server.url]
    idx = pets.parent / "cli_ask_pets"
    assert main(["index", str(pets), "--out", str(idx), "--embedder", "hashing", "--quiet", "--force", *db]) == 0
    capsys.readouterr()
    assert main(["ask", str(idx), "What do cats eat?", "-k", "1", "--max-new-tokens", "8", "--json", "--threshold", "off"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["doc_id"] for p in out["passages"]] == ["cats.md"] and out["n_new_tokens"] > 0


# -------------------------------------------------------------------------------------------------- the embedded server
@pytest.fixture
def folder():
    path = server_folder()
    yield path / "pg"
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow  # three server starts, one after a SIGKILL: 10-20 s
def test_embedded_server_lock_second_start_and_crash_recovery(folder):
    child = textwrap.dedent(f"""
        import os, sys
        from ragft.retrieval.pgvector.store import EmbeddedServer, connect
        srv = EmbeddedServer({str(folder)!r}); srv.start()
        with connect(srv.url) as c:
            c.execute("CREATE TABLE IF NOT EXISTS kept (x int)"); c.execute("INSERT INTO kept VALUES (1)")
        print(srv.pid, flush=True)
        os._exit(0)  # a crash: no stop, no exit handlers; the server keeps running with this process recorded
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    pid = int(first.stdout.split()[0])
    assert psutil.pid_exists(pid)

    srv = EmbeddedServer(folder)
    srv.start()
    assert srv.pid == pid  # attached to the running server rather than starting a second one on the same folder
    srv.stop()  # the crashed process's record was dropped at start: this was the last user, so the server stops
    psutil.Process(pid).wait(10) if psutil.pid_exists(pid) else None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    srv.start()  # a killed server: stale postmaster.pid, WAL replay on start
    killed = srv.pid
    os.kill(killed, signal.SIGKILL)
    srv._server = None
    EmbeddedServer._users.pop(srv.pgdata, None)
    again = EmbeddedServer(folder)
    again.start()  # may come while the killed server still looks alive: start() probes and retries
    try:
        assert again.pid != killed
        with connect(again.url) as c:
            assert c.execute("SELECT count(*) FROM kept").fetchone()[0] == 1  # the committed insert survived
    finally:
        again.stop()
