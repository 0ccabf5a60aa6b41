"""`hubbot bench --db postgresql://...` prints full turns/s on PostgreSQL and leaves the database as it was."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.integration.scale_support import SHIPPED, PgSchema, pg_schema  # noqa: F401 (fixture)


async def test_bench_on_postgresql_prints_turns_per_second_and_cleans_up(pg_schema: PgSchema, tmp_path: Path):
    scratch = "SELECT COUNT(*) FROM pg_namespace WHERE nspname LIKE 'hubbot_bench_%'"
    [(before,)] = await pg_schema.fetch(scratch)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "bench", "--messages", "300", "--turns", "200", "--db", pg_schema.url,
        "--content", str(SHIPPED), cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    out = stdout.decode()
    assert process.returncode == 0, stderr.decode()[-2000:]
    turns = re.search(r"^turns: ([\d,]+) turns/s \(200 full turns with PostgreSQL", out, re.MULTILINE)
    assert turns is not None, out
    assert int(turns.group(1).replace(",", "")) > 0
    assert re.search(r"^understanding: [\d,]+ messages/s, p50 [\d.]+ ms, p99 [\d.]+ ms", out, re.MULTILINE), out
    print("\n" + out.strip())
    # The bench wrote into a scratch schema and dropped it: nothing landed in the schema it was pointed at.
    assert await pg_schema.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", pg_schema.name) == []
    assert await pg_schema.fetch(scratch) == [(before,)]
    assert not list(tmp_path.glob("*.key"))  # no hash-key file: the bench uses its own fixed key
