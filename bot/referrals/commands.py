"""What `hubbot referrals test ORG` and `hubbot referrals list` do (the argument parsing is in bot/cli.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from bot.referrals.channels import DeliveryResult, Outbound
from bot.referrals.directory import ReferralDirectory
from bot.referrals.payload import TEST_ID_PREFIX, referral_document
from bot.store import REFERRAL_STATUSES, Store

# Sample values for a test referral: obviously not a person.
TEST_PERSON = {
    "alias": "Test Person",
    "contact_method": "none (test referral)",
    "topic": "talk_to_someone",
    "risk": "concern",
    "language": "en",
    "region": "US",
}


def new_test_referral_id() -> str:
    return f"{TEST_ID_PREFIX}{uuid.uuid4()}"


async def send_test_referral(
    directory: ReferralDirectory, org_id: str, *, clock: Callable[[], float] = time.time
) -> tuple[str, DeliveryResult]:
    """Send a referral marked `"test": true` through the organisation's channel now; nothing is stored.

    Raises LookupError when the organisation has no `referral:` block.
    """
    org = directory.organization(org_id)
    if org is None or org.referral is None:
        known = ", ".join(o.id for o in directory.organizations()) or "none in this content"
        raise LookupError(f"organisation '{org_id}' takes no referrals (organisations with a referral block: {known})")
    referral_id = new_test_referral_id()
    document = referral_document(referral_id, org.id, clock(), TEST_PERSON, org.referral.fields, test=True)
    channel = directory.primary(org)
    if channel is None:
        return referral_id, DeliveryResult("failed", f"the '{org.referral.channel}' channel is not configured")
    return referral_id, await channel.deliver(Outbound(referral_id, document))


async def referral_counts(store: Store) -> dict[str, int]:
    """How many referrals are in each status (every status listed, zeros included)."""
    stats = await store.stats(since=0.0)
    return {status: int(stats.referrals_by_status.get(status, 0)) for status in REFERRAL_STATUSES}
