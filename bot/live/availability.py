"""Who can talk live right now: listed staff mark themselves with /available and /away in the staff group.

Kept in memory per organisation (a restart means staff say /available again); never persisted.
"""

from __future__ import annotations

from collections import defaultdict


class StaffAvailability:
    def __init__(self) -> None:
        self._available: defaultdict[str, set[int]] = defaultdict(set)

    def mark(self, org_id: str, user_id: int, available: bool) -> None:
        if available:
            self._available[org_id].add(user_id)
        else:
            self._available[org_id].discard(user_id)

    def any_available(self, org_id: str, staff_ids: list[int] | tuple[int, ...] | None = None) -> bool:
        """True when at least one (still listed) staff member said /available and not /away since."""
        present = self._available.get(org_id, set())
        if staff_ids is not None:
            present = present & set(staff_ids)
        return bool(present)

    def count(self, org_id: str) -> int:
        return len(self._available.get(org_id, set()))
