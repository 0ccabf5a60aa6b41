"""A referral outbox worker in its own process, for the scale tests (`python -m tests.integration.scale_referral_worker`).

The same `ReferralWorker` the bot runs, on HUBBOT_DB (PostgreSQL) with the content at HUBBOT_CONTENT, with
short delays so a test does not wait out production backoffs. SIGTERM stops it; the test SIGKILLs one.
"""

from __future__ import annotations

import asyncio
import os
import signal

from bot.referrals.directory import ReferralDirectory
from bot.referrals.worker import ReferralWorker
from bot.reload import ContentHolder
from bot.store import open_store


async def main() -> None:
    holder = ContentHolder(os.environ["HUBBOT_CONTENT"])
    holder.load()
    store = open_store(os.environ["HUBBOT_DB"])
    await store.open()
    directory = ReferralDirectory(lambda: holder.current.content)
    worker = ReferralWorker(
        store,
        directory,
        worker_id=os.environ.get("WORKER_ID"),
        base_delay=0.05,
        max_delay=0.4,
        lease_seconds=float(os.environ.get("WORKER_LEASE_S", "3")),
        poll_interval=0.05,
        max_attempts=60,
        batch_size=20,
        concurrency=8,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    try:
        await worker.run_forever(stop)
    finally:
        await directory.close()
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
