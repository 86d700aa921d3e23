"""`state.backend: sqlite`: one file (WAL) shared by the gateways of one machine. Every call runs on one
thread of its own, never on the event loop; a write adds a batch of updates in one transaction, reading
the stored rows and writing the sums under `BEGIN IMMEDIATE`, so two gateways' batches never lose each
other's outcomes."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from proxy.stats import EntityStats
from proxy.store.base import StoreUnavailable

T = TypeVar("T")
COLUMNS = "total, failed, executed, exec_ms_total, violations, recent_bits, recent"
SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    id TEXT PRIMARY KEY, total INTEGER, failed INTEGER, executed INTEGER, exec_ms_total REAL,
    violations INTEGER, recent_bits TEXT, recent INTEGER, seen REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entities_seen ON entities (seen);
CREATE TABLE IF NOT EXISTS counters (gateway TEXT, name TEXT, value INTEGER, PRIMARY KEY (gateway, name));
CREATE TABLE IF NOT EXISTS documents (gateway TEXT, name TEXT, body TEXT, PRIMARY KEY (gateway, name));
"""
BUSY_MS = 2000  # another gateway's write holds the file: wait this long, then the batch waits for the next
WAL_LIMIT_BYTES = 1 << 20  # the WAL is checkpointed and truncated past this...
CHECKPOINT_S = 60.0  # ...and this often


class SqliteStore:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="isogate-sqlite")
        self._db: sqlite3.Connection | None = None
        self._checkpointed = time.monotonic()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                raise StoreUnavailable(f"{self.path} is not open")
            try:
                return work(self._db)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"{self.path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    async def open(self) -> None:
        """Connect (again: a connection already open is closed first)."""

        def connect() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))  # callers' ids: the owner's only
                db = sqlite3.connect(
                    self.path, timeout=BUSY_MS / 1000, isolation_level=None, check_same_thread=False
                )
            except (OSError, sqlite3.Error) as exc:
                raise StoreUnavailable(f"{self.path}: {exc}") from exc
            try:
                # Switching a new file to WAL does not wait for a busy file: workers starting together retry.
                _retrying(lambda: db.execute("PRAGMA journal_mode=WAL"))
                db.execute("PRAGMA synchronous=NORMAL")  # with WAL: a committed batch survives the process
                db.execute("PRAGMA cache_size=-1024")  # 1 MB of page cache: the gateway's table is the cache
                db.execute(f"PRAGMA wal_autocheckpoint={WAL_LIMIT_BYTES // 4096}")  # pages
                db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")  # a WAL reset is cut to this
                _retrying(lambda: db.executescript(SCHEMA))
            except sqlite3.Error as exc:
                db.close()
                raise StoreUnavailable(f"{self.path}: {exc}") from exc
            self._db = db

        await asyncio.get_running_loop().run_in_executor(self._thread, connect)

    async def fetch(self, entities: Iterable[str]) -> dict[str, EntityStats]:
        wanted = list(entities)

        def read(db: sqlite3.Connection) -> dict[str, EntityStats]:
            return _rows(db, wanted)

        return await self._run(read)

    async def recent(self, limit: int) -> dict[str, EntityStats]:
        def read(db: sqlite3.Connection) -> dict[str, EntityStats]:
            query = f"SELECT id, {COLUMNS} FROM entities ORDER BY seen DESC LIMIT ?"
            rows = db.execute(query, (limit,)).fetchall()
            return {row[0]: unpack(row[1:]) for row in reversed(rows)}  # oldest first: the LRU order

        return await self._run(read)

    async def add(self, updates: dict[str, EntityStats], window: int) -> None:
        def write(db: sqlite3.Connection) -> None:
            stored = _rows(db, list(updates))
            now = time.time()
            rows = []
            for entity, update in updates.items():
                figures = stored.get(entity, EntityStats()).merge(update, window)
                rows.append(
                    (entity, figures.total, figures.failed, figures.executed, figures.exec_ms_total,
                     figures.violations, pack_bits(figures), figures.recent, now)
                )  # fmt: skip
            db.executemany(
                f"INSERT OR REPLACE INTO entities (id, {COLUMNS}, seen) VALUES ({'?, ' * 8}?)", rows
            )

        def write_and_checkpoint(db: sqlite3.Connection) -> None:
            _transaction(db, write)
            self._checkpoint(db)

        await self._run(write_and_checkpoint)  # one hop to the store's thread a batch

    async def add_counters(self, gateway: str, counts: dict[str, int]) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO counters VALUES (?, ?, ?)"
                " ON CONFLICT (gateway, name) DO UPDATE SET value = value + excluded.value",
                [(gateway, name, value) for name, value in counts.items()],
            )

        await self._run(lambda db: _transaction(db, write))

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        """Write the WAL back into the file and truncate it, every CHECKPOINT_S or once it passes
        WAL_LIMIT_BYTES: the WAL never grows past about that (SQLite's own checkpoint at 1,000 pages
        keeps the file at its largest size, 4 MB and more)."""
        wal = Path(f"{self.path}-wal")
        now = time.monotonic()
        try:
            large = wal.stat().st_size > WAL_LIMIT_BYTES
        except OSError:
            large = False
        if large or now - self._checkpointed >= CHECKPOINT_S:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # (another gateway reading: done as far as it can)
            self._checkpointed = now

    async def counters(self, gateway: str) -> dict[str, int]:
        def read(db: sqlite3.Connection) -> dict[str, int]:
            rows = db.execute("SELECT name, value FROM counters WHERE gateway = ?", (gateway,))
            return {str(name): int(value) for name, value in rows}

        return await self._run(read)

    async def save_document(self, gateway: str, name: str, text: str) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?)", (gateway, name, text))

        await self._run(write)

    async def document(self, gateway: str, name: str) -> str | None:
        def read(db: sqlite3.Connection) -> str | None:
            query = "SELECT body FROM documents WHERE gateway = ? AND name = ?"
            row = db.execute(query, (gateway, name)).fetchone()
            return str(row[0]) if row else None

        return await self._run(read)

    async def forget(self, before: float) -> int:
        def delete(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM entities WHERE seen < ?", (before,)).rowcount

        return await self._run(delete)

    async def aclose(self) -> None:
        def close(db: sqlite3.Connection) -> None:
            db.close()

        try:
            await self._run(close)
        except StoreUnavailable:
            pass
        self._db = None
        self._thread.shutdown(wait=True)


def pack_bits(figures: EntityStats) -> str:
    return format(figures.recent_bits, "x")


def unpack(row: tuple[int, int, int, float, int, str, int]) -> EntityStats:
    figures = EntityStats()
    total, failed, executed, exec_ms_total, violations, bits, recent = row
    figures.total, figures.failed, figures.executed = int(total), int(failed), int(executed)
    figures.exec_ms_total, figures.violations = float(exec_ms_total), int(violations)
    figures.recent_bits, figures.recent = int(bits or "0", 16), int(recent)
    return figures


def _rows(db: sqlite3.Connection, entities: list[str]) -> dict[str, EntityStats]:
    """The stored rows of `entities`: one statement whatever their number (the ids travel as one JSON
    array), so the connection caches one prepared statement, not one per batch size."""
    query = f"SELECT id, {COLUMNS} FROM entities WHERE id IN (SELECT value FROM json_each(?))"
    return {row[0]: unpack(row[1:]) for row in db.execute(query, (json.dumps(entities),))}


def _transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], None]) -> None:
    """`work` in one write transaction. On a full disk SQLite rolls it back itself: the error raised is
    then that one (database or disk is full), not the failed ROLLBACK's."""
    db.execute("BEGIN IMMEDIATE")
    try:
        work(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _retrying(work: Callable[[], object]) -> None:
    """`work`, again while the file is locked by another connection, for up to BUSY_MS."""
    until = time.monotonic() + BUSY_MS / 1000
    while True:
        try:
            work()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > until:
                raise
            time.sleep(0.01)
