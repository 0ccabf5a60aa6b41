"""The Store interface every persistence backend implements (SQLite for one process, PostgreSQL for several)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType

from bot.store.records import (
    RETRYABLE_REFERRAL_STATUSES,
    EventRecord,
    LiveSessionRecord,
    ReferralRecord,
    SessionRecord,
    Stats,
    UserRecord,
)


class StoreError(Exception):
    """The database failed or refused an operation; nothing of that operation was written."""


class ConflictError(StoreError):
    """A write broke a constraint (a duplicate id, a row about an unknown user); the whole transaction was rolled back."""


class MissingDriverError(StoreError, ImportError):
    """HUBBOT_DB names a database whose optional driver is not installed; the message says which extra to install."""


class Store(ABC):
    """Persistence of users, sessions, events, the referral outbox and pending chat refs.

    Every timestamp is unix seconds passed in by the caller; a store never reads a clock.
    Every method that writes runs in one short transaction: all of it lands or none of it.
    """

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @abstractmethod
    async def open(self) -> None:
        """Connect and migrate the schema forward; a second call is a no-op."""

    @abstractmethod
    async def close(self) -> None:
        """Wait for the write in flight, then disconnect; safe to call twice."""

    @abstractmethod
    async def healthy(self) -> bool:
        """True when the database answers a trivial query; never raises."""

    @abstractmethod
    async def load(self, user_key: str) -> tuple[UserRecord | None, SessionRecord | None]:
        """The user and their session, each None when unknown."""

    @abstractmethod
    async def save_turn(
        self,
        user: UserRecord,
        session: SessionRecord,
        events: list[EventRecord],
        referrals: list[ReferralRecord],
        *,
        chat_refs: Mapping[str, int] | None = None,
    ) -> None:
        """In one transaction: upsert the user and the session, insert the events and the new referrals,
        and set the chat refs (purpose -> chat id) the new referrals need.

        Every record must be about `user`; a duplicate referral id raises ConflictError and writes nothing.
        """

    @abstractmethod
    async def forget(self, user_key: str) -> int:
        """Delete every row about the user in every table, in one transaction (their referrals and chat
        refs included, whatever their status); return how many rows were deleted."""

    @abstractmethod
    async def mark_inactive(self, user_key: str) -> None:
        """Record that the person blocked the bot (their rows stay until forgotten or purged)."""

    @abstractmethod
    async def purge_events(self, older_than: float) -> int:
        """Delete events recorded before `older_than`; return how many."""

    @abstractmethod
    async def purge_referrals(self, older_than: float) -> int:
        """Delete finished referrals last updated before `older_than`, with their chat refs; return how many referrals."""

    @abstractmethod
    async def stats(self, since: float) -> Stats:
        """Counts of the events recorded at or after `since`."""

    @abstractmethod
    async def set_chat_ref(self, user_key: str, purpose: str, chat_id: int) -> None:
        """Keep the raw chat id while `purpose` is pending; the user must already be saved."""

    @abstractmethod
    async def get_chat_ref(self, user_key: str, purpose: str) -> int | None:
        """The chat id kept for `purpose`, or None."""

    @abstractmethod
    async def delete_chat_ref(self, user_key: str, purpose: str) -> None:
        """Drop the chat id once `purpose` has resolved."""

    @abstractmethod
    async def due_referrals(
        self, now: float, limit: int, *, statuses: tuple[str, ...] = RETRYABLE_REFERRAL_STATUSES
    ) -> list[ReferralRecord]:
        """Referrals in `statuses` whose next_attempt_at <= now, oldest due first (then oldest created).

        The default is the ones ready to send (pending, failed). A worker that uses next_attempt_at as a
        lease on `delivering` or as the acknowledgement deadline of `delivered` passes those statuses too.
        """

    @abstractmethod
    async def claim_referrals(
        self, now: float, limit: int, worker_id: str, lease_seconds: float
    ) -> list[ReferralRecord]:
        """Claim up to `limit` referrals for `worker_id` to send, oldest due first (then oldest created).

        In one transaction, the due `pending` and `failed` referrals (next_attempt_at <= now), and the
        `delivering` ones whose lease ran out (next_attempt_at <= now: their worker died or stalled), become
        `delivering` with next_attempt_at = now + lease_seconds (the lease), updated_at = now and
        claimed_by = worker_id; the claimed records are returned as they now are. Attempts are left to the
        worker. Safe across processes: while its lease runs, a referral is claimed by exactly one worker.
        """

    @abstractmethod
    async def update_referral(
        self,
        referral_id: str,
        *,
        status: str,
        attempts: int | None = None,
        next_attempt_at: float | None = None,
        last_error: str | None = None,
        updated_at: float | None = None,
        if_claimed_by: str | None = None,
    ) -> bool:
        """Set the status and whichever other fields are given (None leaves a field as it is).

        With `if_claimed_by`, only while the referral is `delivering` under that worker's claim: a worker
        whose lease ran out and was taken over cannot overwrite the newer worker's outcome.
        Returns False when nothing was updated: the referral no longer exists (e.g. its person used
        /forget meanwhile) or, with `if_claimed_by`, the claim is no longer that worker's.
        """

    @abstractmethod
    async def get_referral(self, referral_id: str) -> ReferralRecord | None:
        """One referral by id, or None."""

    # -- live hand-off sessions (only while open; no message text) -----------------------------

    @abstractmethod
    async def open_live_session(self, record: LiveSessionRecord) -> bool:
        """Insert the mapping; False (nothing written) when the person already has an open one or the
        topic is already mapped. The user must already be saved."""

    @abstractmethod
    async def get_live_session(self, user_key: str) -> LiveSessionRecord | None:
        """The person's open live session, or None."""

    @abstractmethod
    async def live_session_by_topic(self, staff_chat_id: int, topic_id: int) -> LiveSessionRecord | None:
        """The open live session relayed through that forum topic, or None."""

    @abstractmethod
    async def touch_live_session(self, user_key: str, last_staff_at: float) -> None:
        """Record when a staff member last answered (no text)."""

    @abstractmethod
    async def close_live_session(self, user_key: str) -> LiveSessionRecord | None:
        """Delete the mapping and return it; None when there was none (so only one closer wins)."""
