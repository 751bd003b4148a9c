"""Fault-injection campaign: randomized faults against a real LocalTiDB and LocalBedrock.

Each round writes through the package, injects one fault, then reads the table back over a
separate connection and compares it with what the package acknowledged:

- **lost**: a row an acknowledged write stored (or an ingest finished) is missing;
- **changed**: a row differs from what was written (text, metadata, vector), a deleted row is
  back, a search answered wrongly, or an ingest left a stale/incomplete file after its rerun;
- **unclear**: an exception that is not one of the package's named errors (``errors.py``), or
  whose message is empty, carries SQLAlchemy's boilerplate, or quotes a document's text;
- **ok**: nothing surfaced and the data is right; **recovered**: a named error surfaced, and
  running the call again left the data right.

Fault kinds: ``kill9_add`` / ``kill9_ingest`` (``kill -9`` of a process inside ``add_texts`` /
``ingest_paths``, then a rerun), ``cut_add`` / ``cut_delete`` / ``cut_search`` (the connection
cut at a random byte offset, either direction, by the LatencyProxy), ``cut_commit`` (the
connection lost right after COMMIT was sent, once or twice), ``restart`` (tidb-server stopped
and started while a thread adds, deletes and searches), ``table_recreated`` (another process
drops the table, or recreates it at the same or another dimension), ``index_dropped`` (another
process drops a metadata index or its generated column), ``titan_fault`` (Titan answers 5xx, a
garbled body, a wrong-length or unnormalised vector, once or every time, via the FaultProxy).

Usage: ``python -m benchmarks.faults [--quick] [--seed N] [--rounds N] [--max-seconds S]``;
prints a table and writes ``benchmarks/results/faults.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.common import HashEmbeddings
from langchain_tidb_bedrock import BedrockTitanEmbeddings, TiDBVectorStore, WriteError
from langchain_tidb_bedrock.errors import IngestInterrupted, TiDBBedrockError
from langchain_tidb_bedrock.ingest import ingest_paths, list_sources, plan_ingest, split_file
from langchain_tidb_bedrock.local import LocalBedrock, LocalTiDB
from tests.helpers.fault_proxy import (
    FaultProxy,
    garbled_body,
    plain_status,
    vector_length,
    vector_scaled,
)
from tests.helpers.latency_proxy import LatencyProxy

KINDS = (
    "kill9_add",
    "kill9_ingest",
    "cut_add",
    "cut_delete",
    "cut_search",
    "cut_commit",
    "restart",
    "table_recreated",
    "index_dropped",
    "titan_fault",
)
DIM = 16  # HashEmbeddings size for the database faults
TITAN_DIM = 256
CHUNK_SIZE, CHUNK_OVERLAP = 300, 40
# The whole COM_QUERY packet of COMMIT (not "SET AUTOCOMMIT" on a new connection).
COMMIT_PACKET = b"\x07\x00\x00\x00\x03COMMIT"
RESULTS = Path(__file__).with_name("results") / "faults.json"

Row = tuple[str, dict[str, Any], list[float]]  # text, metadata, vector
# id -> the versions a row may have after the round; None in the list: absent is fine.
Expected = dict[str, list[Row | None]]


# ----------------------------------------------------------------------------- outcomes


@dataclass
class Tally:
    """Outcomes of one fault kind."""

    rounds: int = 0
    exercised: int = 0  # rounds whose fault actually fired
    ok: int = 0
    recovered: int = 0
    lost: int = 0
    changed: int = 0
    unclear: int = 0
    named_errors: int = 0
    seconds: float = 0.0
    errors_seen: dict[str, int] = field(default_factory=dict)
    unclear_examples: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Round:
    """What one round saw: errors (classified), lost and changed rows."""

    def __init__(self, tally: Tally, texts: Callable[[], list[str]]) -> None:
        self.tally, self.texts = tally, texts
        self.named = 0
        self.unclear = 0
        self.lost = 0
        self.changed = 0
        self.fired = False

    def error(self, exc: BaseException, where: str) -> bool:
        """Record an exception the package raised; True when it is named and clear."""
        name = type(exc).__name__
        self.tally.errors_seen[name] = self.tally.errors_seen.get(name, 0) + 1
        message = str(exc)
        clear = (
            isinstance(exc, TiDBBedrockError | IngestInterrupted)
            and bool(message.strip())
            and "Background on this error" not in message
            and not any(t in message for t in self.texts() if len(t) >= 12)
        )
        if clear:
            self.named += 1
        else:
            self.unclear += 1
            if len(self.tally.unclear_examples) < 12:
                self.tally.unclear_examples.append(f"{where}: {name}: {message[:240]}")
        return clear

    def problem(self, what: str) -> None:
        if len(self.tally.problems) < 12:
            self.tally.problems.append(what)

    def close(self) -> None:
        t = self.tally
        t.rounds += 1
        t.exercised += self.fired
        t.lost += self.lost
        t.changed += self.changed
        t.unclear += self.unclear
        t.named_errors += self.named
        if not (self.lost or self.changed or self.unclear):
            if self.named:
                t.recovered += 1
            else:
                t.ok += 1


def same(a: Row, b: Row) -> bool:
    """Whether two rows are equal (vectors within float32 rounding)."""
    return (
        a[0] == b[0]
        and a[1] == b[1]
        and len(a[2]) == len(b[2])
        and all(
            math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-6) for x, y in zip(a[2], b[2], strict=True)
        )
    )


def compare(rnd: Round, actual: dict[str, Row], expected: Expected, what: str) -> None:
    """Count lost and changed rows of ``actual`` against ``expected``."""
    for i, versions in expected.items():
        row = actual.get(i)
        if row is None:
            if None not in versions:
                rnd.lost += 1
                rnd.problem(f"{what}: acknowledged row {i} missing")
        elif not any(v is not None and same(row, v) for v in versions):
            rnd.changed += 1
            gone = versions == [None]
            rnd.problem(f"{what}: row {i} {'deleted but present' if gone else 'differs'}")
    for i in actual.keys() - expected.keys():
        rnd.changed += 1
        rnd.problem(f"{what}: row {i} never written is present")


# ----------------------------------------------------------------------------- environment


class Env:
    """The servers and proxies of a campaign: LocalTiDB behind a LatencyProxy, LocalBedrock."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.tidb = LocalTiDB(data_dir=work / "tidb")
        self.bedrock = LocalBedrock()
        self.proxy: LatencyProxy | None = None
        self.admin: sa.Engine | None = None

    def start(self) -> Env:
        self.tidb.start()
        self.bedrock.start()
        self.proxy = LatencyProxy(self.tidb.port, max_connections=100_000, lifetime=3600).start()
        self.admin = sa.create_engine(self.tidb.url, poolclass=sa.pool.NullPool)
        return self

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self.admin is not None:
            self.admin.dispose()
        self.bedrock.stop()
        self.tidb.stop()

    @property
    def cutter(self) -> LatencyProxy:
        """The proxy in front of TiDB (started)."""
        assert self.proxy is not None
        return self.proxy

    @property
    def url(self) -> str:
        """The TiDB URL through the proxy (where faults are injected)."""
        assert self.proxy is not None
        return self.proxy.url(self.tidb.url)

    def rows(self, table: str) -> dict[str, Row]:
        """Every row of ``table``, read directly (not through the proxy); {} if it is gone."""
        assert self.admin is not None
        with self.admin.connect() as conn:
            exists = conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
                ),
                {"t": table},
            ).scalar()
            if not exists:
                return {}
            result = conn.execute(sa.text(f"SELECT id, document, meta, embedding FROM `{table}`"))
            return {
                r[0]: (r[1], json.loads(r[2]) if r[2] else {}, json.loads(r[3])) for r in result
            }

    def drop(self, table: str) -> None:
        assert self.admin is not None
        with self.admin.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS `{table}`"))

    def other_process(self, code: str) -> None:
        """Run ``code`` with ``conn`` (a transaction on TiDB) bound, in another process."""
        script = (
            "import sqlalchemy as sa\n"
            f"engine = sa.create_engine({self.tidb.url!r})\n"
            "with engine.begin() as conn:\n"
            + "".join(f"    {line}\n" for line in code.strip().splitlines())
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=120)  # noqa: S603


def _texts(rng: random.Random, n: int, tag: str) -> list[str]:
    words = ["tidb", "vector", "bedrock", "titan", "index", "commit", "row", "chunk", "query"]
    return [
        f"{tag} passage {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 30)))
        for i in range(n)
    ]


def _meta(rng: random.Random, i: int) -> dict[str, Any]:
    return {"bucket": i % 5, "n": i, "tag": rng.choice(["a", "b", "c"])}


class Data:
    """Rows a round writes, with their vectors (the store's own embedding, recomputed)."""

    emb = HashEmbeddings(DIM)

    def __init__(self, rng: random.Random, n: int, tag: str) -> None:
        self.ids = [f"{tag}-{i}" for i in range(n)]
        self.texts = _texts(rng, n, tag)
        self.metas = [_meta(rng, i) for i in range(n)]

    def row(self, k: int) -> Row:
        return (self.texts[k], self.metas[k], self.emb.embed_query(self.texts[k]))

    def expected(self, ks: range | list[int] | None = None) -> Expected:
        ks = range(len(self.ids)) if ks is None else ks
        return {self.ids[k]: [self.row(k)] for k in ks}


def _store(url: str, table: str, **kwargs: Any) -> TiDBVectorStore:
    kwargs.setdefault("embedding_dimension", DIM)
    return TiDBVectorStore(HashEmbeddings(DIM), connection_string=url, table_name=table, **kwargs)


def _measure(proxy: LatencyProxy, fn: Callable[[], object]) -> int:
    """Bytes ``fn`` sends and receives through the proxy (with no cut)."""
    big = 10**15
    proxy.cut_at_byte = big
    try:
        fn()
    finally:
        left, proxy.cut_at_byte = proxy.cut_at_byte, None
    return big - (left if left is not None else big)


# ----------------------------------------------------------------------------- rounds


class Campaign:
    def __init__(self, env: Env, seed: int, quick: bool) -> None:
        self.env = env
        self.rng = random.Random(seed)
        self.quick = quick
        self.tallies = {k: Tally() for k in KINDS}
        self.n = 0
        self._titan_cache: dict[str, list[float]] = {}

    # -- helpers

    def table(self, kind: str) -> str:
        self.n += 1
        return f"fault_{kind}_{self.n}_{uuid.uuid4().hex[:6]}"

    @contextlib.contextmanager
    def round(self, kind: str, texts: Callable[[], list[str]]) -> Iterator[Round]:
        rnd = Round(self.tallies[kind], texts)
        try:
            yield rnd
        except Exception as exc:
            rnd.problem(f"round aborted: {type(exc).__name__}: {str(exc)[:200]}")
            rnd.unclear += 1
        finally:
            rnd.close()

    def attempt(self, rnd: Round, where: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """Run ``fn``: ``(True, result)`` or ``(False, the exception)`` (classified)."""
        try:
            return True, fn()
        except (Exception, IngestInterrupted) as exc:
            rnd.error(exc, where)
            return False, exc

    def size(self, small: int, large: int) -> int:
        return self.rng.randint(small, small * 2) if self.quick else self.rng.randint(small, large)

    # -- kill -9 of add_texts

    def kill9_add(self) -> None:
        table = self.table("k9a")
        data = Data(self.rng, self.size(60, 400), f"k{self.n}")
        batch = self.rng.choice([5, 10, 25])
        bulk = self.rng.random() < 0.5
        with self.round("kill9_add", lambda: data.texts) as rnd:
            spec = {
                **{"mode": "add", "url": self.env.tidb.url, "table": table, "batch": batch},
                **{"bulk": bulk, "ids": data.ids, "texts": data.texts, "metas": data.metas},
            }
            steps = self.rng.randrange(math.ceil(len(data.ids) / batch))
            acked, done = self._run_worker(spec, steps, self.rng.uniform(0.0, 0.02))
            rnd.fired = not done
            expected: Expected = {i: [data.row(k), None] for k, i in enumerate(data.ids)}
            for b in acked:
                expected.update(
                    data.expected(range(b * batch, min((b + 1) * batch, len(data.ids))))
                )
            actual = self.env.rows(table)
            compare(rnd, actual, expected, "after kill -9")
            # A batch is one transaction: all of it or none.
            for b in range(math.ceil(len(data.ids) / batch)):
                present = sum(i in actual for i in data.ids[b * batch : (b + 1) * batch])
                if 0 < present < len(data.ids[b * batch : (b + 1) * batch]):
                    rnd.changed += 1
                    rnd.problem(f"batch {b} half stored after kill -9")
            store = _store(self.env.url, table, bulk_load=bulk)
            ok, _ = self.attempt(rnd, "rerun add_texts", lambda: store.add_texts(
                data.texts, data.metas, ids=data.ids, batch_size=batch))  # fmt: skip
            store.close()
            if ok:
                compare(rnd, self.env.rows(table), data.expected(), "after rerun")
            self.env.drop(table)

    def _run_worker(self, spec: dict[str, Any], steps: int, delay: float) -> tuple[list[int], bool]:
        """Run a worker; kill -9 it ``delay`` s after its ``steps``-th step (0: once ready).

        Returns the batches it acknowledged, and whether it finished before the kill.
        """
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir=self.env.work) as f:
            json.dump(spec, f)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", "benchmarks.faults", "--worker", f.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        lines: list[str] = []
        ready = threading.Event()

        def pump() -> None:
            assert proc.stdout is not None
            seen = -1
            for line in proc.stdout:
                lines.append(line.strip())
                if line.startswith(("READY", "STEP")):
                    seen += 1
                    if seen >= steps:
                        ready.set()
            ready.set()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        ready.wait(120)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        reader.join(10)
        Path(f.name).unlink()
        acked = [int(x.split()[1]) for x in lines if x.startswith("ACK ")]
        return acked, "DONE" in lines

    # -- kill -9 of ingest_paths

    def titan(self, texts: list[str]) -> dict[str, list[float]]:
        """Clean Titan vectors of ``texts`` straight from LocalBedrock (cached)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._titan_cache]
        if missing:
            emb = BedrockTitanEmbeddings(endpoint_url=self.env.bedrock.endpoint_url,
                                         dimensions=TITAN_DIM)  # fmt: skip
            self._titan_cache.update(zip(missing, emb.embed_documents(missing), strict=True))
        return {t: self._titan_cache[t] for t in texts}

    def _write_folder(self, folder: Path, files: dict[str, str]) -> None:
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")

    def _folder_files(self, n: int, tag: str) -> dict[str, str]:
        out = {}
        for f in range(n):
            sections = [
                f"## Section {s} of {tag} file {f}\n\n"
                + "\n".join(_texts(self.rng, 3, f"{tag}{f}.{s}"))
                for s in range(self.rng.randint(1, 4))
            ]  # fmt: skip
            out[f"doc{f}.md"] = f"# {tag} file {f}\n\n" + "\n\n".join(sections) + "\n"
        return out

    def _expected_chunks(self, folder: Path) -> dict[str, tuple[str, str]]:
        """id -> (source, text) of every chunk an ingest of ``folder`` stores."""
        out = {}
        for path, source in plan_ingest([folder]).files:
            for doc in split_file(path, source, chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP):
                out[str(doc.id)] = (source, doc.page_content)
        return out

    def _check_chunks(
        self, rnd: Round, table: str, allowed: dict[str, tuple[str, str]],
        required: set[str], what: str,
    ) -> None:  # fmt: skip
        actual = self.env.rows(table)
        vectors = self.titan([t for _, t in allowed.values()])
        for i in required - actual.keys():
            rnd.lost += 1
            rnd.problem(f"{what}: chunk {i} missing")
        for i, (text, meta, vec) in actual.items():
            want = allowed.get(i)
            if want is None:
                rnd.changed += 1
                rnd.problem(f"{what}: chunk {i} should not be stored")
            elif (meta.get("source"), text) != want or not same(
                (text, {}, vec), (text, {}, vectors[want[1]])
            ):
                rnd.changed += 1
                rnd.problem(f"{what}: chunk {i} differs")

    def kill9_ingest(self) -> None:
        table = self.table("k9i")
        folder = self.env.work / f"docs{self.n}"
        folder.mkdir()
        files = self._folder_files(self.size(3, 12), f"v1r{self.n}")
        self._write_folder(folder, files)
        v1 = self._expected_chunks(folder)
        with self.round("kill9_ingest", lambda: [t for _, t in v1.values()]) as rnd:
            store = TiDBVectorStore(
                BedrockTitanEmbeddings(endpoint_url=self.env.bedrock.endpoint_url,
                                       dimensions=TITAN_DIM),
                connection_string=self.env.url, table_name=table)  # fmt: skip
            ok, _ = self.attempt(rnd, "first ingest", lambda: ingest_paths(
                store, [folder], show_progress=False, chunk_size=CHUNK_SIZE,
                chunk_overlap=CHUNK_OVERLAP))  # fmt: skip
            if ok:
                self._check_chunks(rnd, table, v1, set(v1), "first ingest")
            # Change some files, add one: the killed run replaces their chunks.
            changed = self.rng.sample(sorted(files), k=max(1, len(files) // 2))
            new = self._folder_files(len(files) + 1, f"v2r{self.n}")
            update = {name: new[name] for name in changed} | {
                "added.md": new[f"doc{len(files)}.md"]
            }
            self._write_folder(folder, update)
            v2 = self._expected_chunks(folder)
            v1_kept = {i for i, (s, _) in v1.items() if s.rsplit("/", 1)[-1] not in changed}
            spec = {"mode": "ingest", "url": self.env.tidb.url, "table": table,
                    "folder": str(folder), "endpoint": self.env.bedrock.endpoint_url}  # fmt: skip
            _, done = self._run_worker(spec, self.rng.randint(0, 2), self.rng.uniform(0.0, 0.05))
            rnd.fired = not done
            # Unchanged files keep their chunks; changed ones hold old or new chunks only.
            self._check_chunks(rnd, table, v1 | v2, v1_kept if ok else set(), "after kill -9")
            ok2, _ = self.attempt(rnd, "rerun ingest", lambda: ingest_paths(
                store, [folder], show_progress=False, chunk_size=CHUNK_SIZE,
                chunk_overlap=CHUNK_OVERLAP))  # fmt: skip
            if ok2:
                self._check_chunks(rnd, table, v2, set(v2), "after rerun")
                unfinished = [s.source for s in list_sources(store) if not s.complete]
                rnd.changed += len(unfinished)
                if unfinished:
                    rnd.problem(f"incomplete after rerun: {unfinished}")
            store.close()
            self.env.drop(table)

    # -- connection cuts at a random byte

    def _cut_store(self, tag: str) -> tuple[str, Data, TiDBVectorStore, bool]:
        table = self.table(tag)
        data = Data(self.rng, self.size(30, 200), f"c{self.n}")
        bulk = self.rng.random() < 0.5
        store = _store(self.env.url, table, bulk_load=bulk, indexed_metadata={"bucket": int})
        store.add_texts(data.texts, data.metas, ids=data.ids)
        return table, data, store, bulk

    def _arm_and_run(
        self, rnd: Round, where: str, fn: Callable[[], Any], size: int
    ) -> tuple[bool, Any]:
        proxy = self.env.proxy
        assert proxy is not None
        before = proxy.cuts_made
        proxy.cut_at_byte = self.rng.randrange(max(1, size))
        try:
            return self.attempt(rnd, where, fn)
        finally:
            proxy.cut_at_byte = None
            rnd.fired = proxy.cuts_made > before

    def cut_add(self) -> None:
        table, data, store, _ = self._cut_store("ca")
        more = Data(self.rng, self.size(20, 200), f"m{self.n}")
        # Half new rows, half new versions of stored ones.
        redo = self.rng.sample(range(len(data.ids)), k=len(data.ids) // 2)
        for j, k in enumerate(redo[: len(more.ids)]):
            more.ids[j] = data.ids[k]
        with self.round("cut_add", lambda: data.texts + more.texts) as rnd:
            # The same rows under other ids of the same length: as many bytes as the add.
            probe = [{"c": "q", "m": "w"}[i[0]] + i[1:] for i in more.ids]
            size = _measure(
                self.env.cutter, partial(store.add_texts, more.texts, more.metas, ids=probe)
            )
            store.delete(probe)
            ok, res = self._arm_and_run(rnd, "add_texts", lambda: store.add_texts(
                more.texts, more.metas, ids=more.ids), size)  # fmt: skip
            expected = data.expected()
            for k, i in enumerate(more.ids):
                old = expected.get(i, [None])
                if ok or (isinstance(res, WriteError) and k < res.committed):
                    expected[i] = [more.row(k)]
                else:
                    expected[i] = [*old, more.row(k)]
            compare(rnd, self.env.rows(table), expected, "after cut add")
            if not ok:
                ok2, _ = self.attempt(rnd, "rerun add_texts", lambda: store.add_texts(
                    more.texts, more.metas, ids=more.ids))  # fmt: skip
                if ok2:
                    final = data.expected()
                    final.update(more.expected())
                    compare(rnd, self.env.rows(table), final, "after rerun")
        store.close()
        self.env.drop(table)

    def cut_delete(self) -> None:
        table, data, store, _ = self._cut_store("cd")
        gone = sorted(self.rng.sample(range(len(data.ids)), k=self.rng.randint(1, len(data.ids))))
        ids = [data.ids[k] for k in gone]
        with self.round("cut_delete", lambda: data.texts) as rnd:
            use_filter = self.rng.random() < 0.3
            bucket = self.rng.randrange(5)
            # Ids (a bucket) stored nowhere, of the same length: as many bytes as the delete.
            size = _measure(
                self.env.cutter,
                partial(store.delete, filter={"bucket": bucket + 5})
                if use_filter
                else partial(store.delete, [f"z{i[1:]}" for i in ids]),
            )
            if use_filter:
                ids = [i for k, i in enumerate(data.ids) if data.metas[k]["bucket"] == bucket]
            fn = (lambda: store.delete(filter={"bucket": bucket})) if use_filter else (
                lambda: store.delete(ids))  # fmt: skip
            ok, _ = self._arm_and_run(rnd, "delete", fn, size)
            expected = data.expected()
            for i in ids:
                expected[i] = [None] if ok else [*expected[i], None]
            compare(rnd, self.env.rows(table), expected, "after cut delete")
            if not ok:
                ok2, _ = self.attempt(rnd, "rerun delete", fn)
                if ok2:
                    for i in ids:
                        expected[i] = [None]
                    compare(rnd, self.env.rows(table), expected, "after rerun")
        store.close()
        self.env.drop(table)

    def cut_search(self) -> None:
        table, data, store, _ = self._cut_store("cs")
        with self.round("cut_search", lambda: data.texts) as rnd:
            k = self.rng.randrange(len(data.ids))
            op = self.rng.choice(["search", "get_by_ids", "filter", "count"])
            bucket = data.metas[k]["bucket"]
            subset = self.rng.sample(data.ids, k=min(10, len(data.ids)))
            calls: dict[str, Callable[[], Any]] = {
                "search": lambda: store.similarity_search(data.texts[k], k=3),
                "get_by_ids": lambda: store.get_by_ids(subset),
                "filter": lambda: store.get(filter={"bucket": bucket}),
                "count": store.count,
            }
            size = _measure(self.env.cutter, calls[op])
            ok, res = self._arm_and_run(rnd, op, calls[op], size)
            if ok:
                if op == "search":
                    right = (
                        bool(res)
                        and res[0].id == data.ids[k]
                        and res[0].page_content == data.texts[k]
                    )
                elif op == "get_by_ids":
                    want = {i: data.texts[data.ids.index(i)] for i in subset}
                    right = {d.id: d.page_content for d in res} == want
                elif op == "filter":
                    right = {d.id for d in res} == {
                        i for j, i in enumerate(data.ids) if data.metas[j]["bucket"] == bucket
                    }
                else:
                    right = res == len(data.ids)
                if not right:
                    rnd.changed += 1
                    rnd.problem(f"{op} answered wrongly after a cut")
            compare(rnd, self.env.rows(table), data.expected(), "after cut search")
        store.close()
        self.env.drop(table)

    def cut_commit(self) -> None:
        table, data, store, _ = self._cut_store("cc")
        proxy = self.env.proxy
        assert proxy is not None
        more = Data(self.rng, self.size(10, 100), f"m{self.n}")
        delete = self.rng.random() < 0.3
        with self.round("cut_commit", lambda: data.texts + more.texts) as rnd:
            before = proxy.cuts_made
            proxy.cut_after, proxy.cuts_left = COMMIT_PACKET, self.rng.choice([1, 1, 2])
            try:
                if delete:
                    ok, _ = self.attempt(rnd, "delete", lambda: store.delete(data.ids[:5]))
                else:
                    ok, res = self.attempt(rnd, "add_texts", lambda: store.add_texts(
                        more.texts, more.metas, ids=more.ids))  # fmt: skip
            finally:
                proxy.cut_after = None
                rnd.fired = proxy.cuts_made > before
            expected = data.expected()
            if delete:
                for i in data.ids[:5]:
                    expected[i] = [None] if ok else [*expected[i], None]
            else:
                for k, i in enumerate(more.ids):
                    committed = not ok and isinstance(res, WriteError) and k < res.committed
                    expected[i] = [more.row(k)] if ok or committed else [more.row(k), None]
            compare(rnd, self.env.rows(table), expected, "after lost COMMIT")
            if not ok:
                redo = (lambda: store.delete(data.ids[:5])) if delete else (
                    lambda: store.add_texts(more.texts, more.metas, ids=more.ids))  # fmt: skip
                if self.attempt(rnd, "rerun", redo)[0]:
                    for i in data.ids[:5] if delete else []:
                        expected[i] = [None]
                    if not delete:
                        expected.update(more.expected())
                    compare(rnd, self.env.rows(table), expected, "after rerun")
        store.close()
        self.env.drop(table)

    # -- tidb-server restart under load

    def restart(self) -> None:
        table = self.table("rs")
        data = Data(self.rng, 30, f"r{self.n}")
        store = _store(self.env.url, table, bulk_load=self.rng.random() < 0.5)
        store.add_texts(data.texts, data.metas, ids=data.ids)
        expected = data.expected()
        all_texts = list(data.texts)
        failed: list[Callable[[], Any]] = []
        settle: dict[str, Row | None] = {}  # what a rerun of the failed calls leaves
        with self.round("restart", lambda: all_texts) as rnd:
            stop = threading.Event()
            lock = threading.Lock()
            wrng = random.Random(self.rng.random())

            def load() -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    op = wrng.choice(["add", "add", "delete", "search"])
                    if op == "add":
                        batch = Data(wrng, 10, f"r{self.n}w{n}")
                        all_texts.extend(batch.texts)
                        ok, res = self.attempt(rnd, "add_texts", partial(
                            store.add_texts, batch.texts, batch.metas, ids=batch.ids))  # fmt: skip
                        with lock:
                            for k, i in enumerate(batch.ids):
                                committed = isinstance(res, WriteError) and k < res.committed
                                expected[i] = (
                                    [batch.row(k)] if ok or committed else [batch.row(k), None]
                                )
                                if not (ok or committed):
                                    settle[i] = batch.row(k)
                        if not ok:
                            failed.append(
                                partial(store.add_texts, batch.texts, batch.metas, ids=batch.ids)
                            )
                    elif op == "delete":
                        with lock:
                            # Rows in a settled state only: a rerun then decides each id.
                            live = [i for i, v in expected.items() if len(v) == 1 and v[0]]
                        ids = wrng.sample(live, k=min(3, len(live)))
                        ok, _ = self.attempt(rnd, "delete", partial(store.delete, ids))
                        with lock:
                            for i in ids:
                                expected[i] = [None] if ok else [*expected[i], None]
                                if not ok:
                                    settle[i] = None
                        if not ok:
                            failed.append(partial(store.delete, ids))
                    else:
                        k = wrng.randrange(len(data.ids))
                        ok, res = self.attempt(
                            rnd, "search", partial(store.similarity_search, data.texts[k], k=1)
                        )
                        with lock:
                            stored = expected[data.ids[k]] == [data.row(k)]
                        if ok and stored and (not res or res[0].id != data.ids[k]):
                            rnd.changed += 1
                            rnd.problem("search answered wrongly around a restart")
                    time.sleep(0.01)

            worker = threading.Thread(target=load, daemon=True)
            worker.start()
            time.sleep(self.rng.uniform(0.1, 0.8))
            self.env.tidb.stop()
            rnd.fired = True
            time.sleep(self.rng.uniform(0.0, 1.0))
            self.env.tidb.start()
            time.sleep(self.rng.uniform(0.3, 1.0))
            stop.set()
            worker.join(180)
            compare(rnd, self.env.rows(table), expected, "after restart")
            if failed:
                reruns = [self.attempt(rnd, "rerun", redo)[0] for redo in failed]
                if all(reruns):
                    expected.update((i, [v]) for i, v in settle.items())
                compare(rnd, self.env.rows(table), expected, "after rerun")
        store.close()
        self.env.drop(table)

    # -- another process changes the table

    def table_recreated(self) -> None:
        table = self.table("tr")
        data = Data(self.rng, self.size(10, 60), f"t{self.n}")
        store = _store(self.env.url, table)
        store.add_texts(data.texts, data.metas, ids=data.ids)
        change = self.rng.choice(["drop", "same dimension", "other dimension"])
        more = Data(self.rng, 5, f"u{self.n}")
        with self.round("table_recreated", lambda: data.texts + more.texts) as rnd:
            rnd.fired = True
            dim = DIM if change == "same dimension" else 2 * DIM
            create = "" if change == "drop" else (
                f"conn.execute(sa.text('CREATE TABLE `{table}` (id VARCHAR(255) PRIMARY KEY, "
                f"embedding VECTOR({dim}) NOT NULL, document MEDIUMTEXT, meta JSON)'))"
            )  # fmt: skip
            self.env.other_process(f"conn.execute(sa.text('DROP TABLE `{table}`'))\n{create}")
            ok, res = self.attempt(
                rnd, "search", lambda: store.similarity_search(more.texts[0], k=3)
            )
            if ok and res:
                rnd.changed += 1
                rnd.problem("search found rows of a dropped table")
            ok, _ = self.attempt(rnd, "add_texts", lambda: store.add_texts(
                more.texts, more.metas, ids=more.ids))  # fmt: skip
            if change == "other dimension" and ok:
                rnd.changed += 1
                rnd.problem(f"{DIM}-d rows written into a {dim}-d table")
            expected = more.expected() if ok else {}
            compare(rnd, self.env.rows(table), expected, f"after {change}")
            ok, res = self.attempt(rnd, "get_by_ids", lambda: store.get_by_ids(more.ids + data.ids))
            if ok and {d.id for d in res} != set(expected):
                rnd.changed += 1
                rnd.problem("get_by_ids answered wrongly after the table changed")
        store.close()
        self.env.drop(table)

    def index_dropped(self) -> None:
        table = self.table("ix")
        data = Data(self.rng, self.size(20, 150), f"i{self.n}")
        store = _store(self.env.url, table, indexed_metadata={"bucket": int})
        store.add_texts(data.texts, data.metas, ids=data.ids)
        how = self.rng.choice(["index", "column"])
        with self.round("index_dropped", lambda: data.texts) as rnd:
            rnd.fired = True
            col, view = (
                ("INDEX_NAME", "STATISTICS") if how == "index" else ("COLUMN_NAME", "COLUMNS")
            )
            drop = "DROP INDEX" if how == "index" else "DROP COLUMN"
            self.env.other_process(
                f'names = {{r[0] for r in conn.execute(sa.text("SELECT {col} FROM '
                f"INFORMATION_SCHEMA.{view} WHERE TABLE_SCHEMA = DATABASE() AND "
                f"TABLE_NAME = '{table}' AND {col} "
                "NOT IN ('PRIMARY', 'id', 'embedding', 'document', 'meta')\"))}\n"
                "assert names, 'no metadata index'\n"
                "for name in names:\n"
                f"    conn.execute(sa.text(f'ALTER TABLE `{table}` {drop} `{{name}}`'))"
            )
            more = Data(self.rng, 5, f"j{self.n}")
            ok, _ = self.attempt(rnd, "add_texts", lambda: store.add_texts(
                more.texts, more.metas, ids=more.ids))  # fmt: skip
            metas = data.metas + (more.metas if ok else [])
            ids = data.ids + (more.ids if ok else [])
            for bucket in range(5):
                want = {i for i, m in zip(ids, metas, strict=True) if m["bucket"] == bucket}
                ok2, res = self.attempt(
                    rnd, "filtered get", partial(store.get, filter={"bucket": bucket})
                )
                if ok2 and {d.id for d in res} != want:
                    rnd.changed += 1
                    rnd.problem(f"filter on bucket {bucket} wrong after the {how} was dropped")
            expected = data.expected()
            if ok:
                expected.update(more.expected())
            compare(rnd, self.env.rows(table), expected, f"after the {how} was dropped")
        store.close()
        self.env.drop(table)

    # -- Titan faults

    def titan_fault(self) -> None:
        table = self.table("ti")
        texts = _texts(self.rng, self.size(5, 40), f"e{self.n}")
        ids = [f"e{self.n}-{i}" for i in range(len(texts))]
        metas = [_meta(self.rng, i) for i in range(len(texts))]
        kind = self.rng.choice(["500", "502", "503", "garbled", "length", "scaled"])
        fault = {"500": plain_status(500), "502": plain_status(502), "503": plain_status(503),
                 "garbled": garbled_body(), "length": vector_length(self.rng.randint(1, 300)),
                 "scaled": vector_scaled(self.rng.choice([0.5, 1.5, 3.0]))}[kind]  # fmt: skip
        if kind == "length" and self.rng.random() < 0.5:
            fault = vector_length(TITAN_DIM - 3)
        hit = set(self.rng.sample(texts, k=self.rng.randint(1, len(texts))))
        times = self.rng.choice([1, 2, None])
        clean = self.titan(texts)
        with (
            self.round("titan_fault", lambda: texts) as rnd,
            FaultProxy(self.env.bedrock.endpoint_url) as fp,
        ):
            fp.inject(
                fault, times=times, when=lambda b: isinstance(b, dict) and b.get("inputText") in hit
            )
            emb = BedrockTitanEmbeddings(
                endpoint_url=fp.endpoint_url,
                dimensions=TITAN_DIM,
                backoff_base=0.005,
                max_retries=3,
                timeout=10.0,
            )
            store = TiDBVectorStore(emb, connection_string=self.env.url, table_name=table)
            ok, _ = self.attempt(rnd, "add_texts", lambda: store.add_texts(texts, metas, ids=ids))
            rnd.fired = fp.injected > 0
            rows: dict[str, Row] = {
                i: (t, m, clean[t]) for i, t, m in zip(ids, texts, metas, strict=True)
            }
            expected: Expected = {i: [r] if ok else [r, None] for i, r in rows.items()}
            compare(rnd, self.env.rows(table), expected, f"after Titan {kind}")
            if not ok:
                store2 = TiDBVectorStore(
                    BedrockTitanEmbeddings(endpoint_url=self.env.bedrock.endpoint_url,
                                           dimensions=TITAN_DIM),
                    connection_string=self.env.url, table_name=table)  # fmt: skip
                if self.attempt(
                    rnd, "rerun add_texts", lambda: store2.add_texts(texts, metas, ids=ids)
                )[0]:
                    compare(
                        rnd, self.env.rows(table), {i: [r] for i, r in rows.items()}, "after rerun"
                    )
                store2.close()
            store.close()
        self.env.drop(table)


# ----------------------------------------------------------------------------- worker


class _Announcing(BedrockTitanEmbeddings):
    """Titan that says when each batch starts embedding (where the parent may kill)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        print("STEP", flush=True)
        return super().embed_documents(texts)


def _worker(spec_path: str) -> None:
    """The process that is killed: adds rows batch by batch, or ingests a folder."""
    spec = json.loads(Path(spec_path).read_text())
    if spec["mode"] == "add":
        store = _store(spec["url"], spec["table"], bulk_load=spec["bulk"])
        store.count()  # connected
        print("READY", flush=True)
        b = spec["batch"]
        for n in range(math.ceil(len(spec["ids"]) / b)):
            part = slice(n * b, (n + 1) * b)
            print("STEP", flush=True)
            store.add_texts(spec["texts"][part], spec["metas"][part], ids=spec["ids"][part])
            print(f"ACK {n}", flush=True)
    else:
        emb = _Announcing(endpoint_url=spec["endpoint"], dimensions=TITAN_DIM)
        store = TiDBVectorStore(emb, connection_string=spec["url"], table_name=spec["table"])
        store.count()
        print("READY", flush=True)
        ingest_paths(store, [spec["folder"]], show_progress=False, batch_size=4,
                     chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)  # fmt: skip
    print("DONE", flush=True)


# ----------------------------------------------------------------------------- campaign


def _fake_aws_env() -> None:
    # boto3 signs requests with these; LocalBedrock does not check them.
    os.environ.pop("AWS_BEARER_TOKEN_BEDROCK", None)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local-fault-key")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local-fault-secret")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def run_campaign(
    *, seed: int = 0, quick: bool = False, rounds: int | None = None, max_seconds: float = 600.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:  # fmt: skip
    """Run rounds of every fault kind, round-robin in a seeded order; returns the results.

    Stops after ``rounds`` rounds per kind (quick: 2, else 30) or ``max_seconds``, whichever
    comes first (always at least one round per kind).
    """
    _fake_aws_env()
    per_kind = rounds if rounds is not None else (2 if quick else 30)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        env = Env(Path(tmp)).start()
        try:
            campaign = Campaign(env, seed, quick)
            for cycle in range(per_kind):
                order = list(KINDS)
                campaign.rng.shuffle(order)
                for kind in order:
                    began = time.monotonic()
                    getattr(campaign, kind)()
                    campaign.tallies[kind].seconds += time.monotonic() - began
                if time.monotonic() - started > max_seconds:
                    log(f"stopped after {cycle + 1} rounds per kind ({max_seconds:.0f} s cap)")
                    break
        finally:
            env.stop()
    tallies = campaign.tallies
    total = {
        key: sum(getattr(t, key) for t in tallies.values())
        for key in (
            "rounds",
            "exercised",
            "ok",
            "recovered",
            "lost",
            "changed",
            "unclear",
            "named_errors",
        )
    }
    return {
        "seed": seed,
        "quick": quick,
        "seconds": round(time.monotonic() - started, 1),
        "total": total,
        "kinds": {k: {**asdict(t), "seconds": round(t.seconds, 1)} for k, t in tallies.items()},
    }


def table(results: dict[str, Any]) -> str:
    """The results as a text table."""
    cols = ("rounds", "exercised", "ok", "recovered", "lost", "changed", "unclear", "named_errors")
    head = f"{'fault':<16}" + "".join(f"{c:>13}" for c in cols)
    lines = [head, "-" * len(head)]
    for kind, t in results["kinds"].items():
        lines.append(f"{kind:<16}" + "".join(f"{t[c]:>13}" for c in cols))
    lines.append("-" * len(head))
    lines.append(f"{'total':<16}" + "".join(f"{results['total'][c]:>13}" for c in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 small rounds per kind (< 60 s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=None, help="rounds per fault kind")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # The store's notices (no vector index on a server without TiFlash) would flood the table.
    logging.basicConfig(level=logging.ERROR)
    if args.worker:
        _fake_aws_env()
        _worker(args.worker)
        return 0
    results = run_campaign(
        seed=args.seed, quick=args.quick, rounds=args.rounds, max_seconds=args.max_seconds
    )
    print(table(results))
    print(f"seed {results['seed']}, {results['seconds']} s")
    for kind, t in results["kinds"].items():
        for line in t["unclear_examples"] + t["problems"]:
            print(f"  {kind}: {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    bad = results["total"]["lost"] + results["total"]["changed"] + results["total"]["unclear"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
