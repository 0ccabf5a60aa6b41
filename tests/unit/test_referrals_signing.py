"""Referral parts without a network: signatures, payloads, backoff, Retry-After, the staff message."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.referrals.channels import parse_retry_after, url_is_acceptable
from bot.referrals.payload import alert_document, canonical_json, referral_document
from bot.referrals.signing import sign, signature_header, verify
from bot.referrals.staff import StaffDecision, staff_message
from bot.referrals.worker import ReferralWorker

NOW = 1_767_261_600
OLD = b"old-secret-0123456789"
NEW = b"new-secret-9876543210"

bodies = st.binary(max_size=2048)
stamps = st.integers(min_value=1_000_000_000, max_value=4_000_000_000)


@settings(max_examples=200, deadline=None)
@given(body=bodies, timestamp=stamps)
def test_a_signed_body_verifies_and_any_change_does_not(body: bytes, timestamp: int) -> None:
    header = sign(OLD, timestamp, body)
    expected = hmac.new(OLD, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"v1={expected}"  # exactly the documented scheme
    assert verify(header, str(timestamp), body, [OLD], now=timestamp)
    assert not verify(header, str(timestamp), body + b"x", [OLD], now=timestamp)
    assert not verify(header, str(timestamp + 1), body, [OLD], now=timestamp)
    assert not verify(header, str(timestamp), body, [NEW], now=timestamp)


@settings(max_examples=100, deadline=None)
@given(body=bodies)
def test_while_rotating_either_secret_verifies(body: bytes) -> None:
    header = signature_header([NEW, OLD], NOW, body)
    assert header.count("v1=") == 2 and header.startswith(sign(NEW, NOW, body))
    assert verify(header, str(NOW), body, [OLD], now=NOW)  # a receiver that has not updated yet
    assert verify(header, str(NOW), body, [NEW], now=NOW)  # a receiver that already has
    assert verify(header, str(NOW), body, [NEW, OLD], now=NOW)
    assert not verify(header, str(NOW), body, [b"third"], now=NOW)


@settings(max_examples=100, deadline=None)
@given(body=bodies, skew=st.integers(min_value=-10_000, max_value=10_000))
def test_timestamps_more_than_five_minutes_off_are_rejected(body: bytes, skew: int) -> None:
    header = sign(OLD, NOW + skew, body)
    assert verify(header, str(NOW + skew), body, [OLD], now=NOW) is (abs(skew) <= 300)


@pytest.mark.parametrize(
    "header, stamp",
    [
        (None, str(NOW)),
        ("", str(NOW)),
        ("v1=", str(NOW)),
        ("v2=" + "0" * 64, str(NOW)),
        ("garbage", str(NOW)),
        ("v1=é", str(NOW)),
        ("v1=" + "0" * 64, None),
        ("v1=" + "0" * 64, "-5"),
        ("v1=" + "0" * 64, "12.5"),
        ("v1=" + "0" * 64, "٣"),  # a non-ASCII digit is not a timestamp
        (",".join(["v1=" + "0" * 64] * 9), str(NOW)),  # too many values
    ],
)
def test_malformed_headers_never_verify_and_never_raise(header: str | None, stamp: str | None) -> None:
    assert verify(header, stamp, b"{}", [OLD], now=NOW) is False


def test_a_good_value_among_unknown_schemes_and_spaces_verifies() -> None:
    good = sign(OLD, NOW, b"{}")
    assert verify(f"v0=abc, {good} ,v2=def", f" {NOW} ", b"{}", [OLD], now=NOW)
    assert not verify(good, str(NOW), b"{}", [], now=NOW)


CONSENTED = {"topic": "anxiety", "risk": "high", "language": "es", "region": "MX", "user_key": "k", "chat_id": 42}


def test_a_referral_document_carries_only_what_was_asked_and_agreed() -> None:
    document = referral_document("r-1", "org", NOW, CONSENTED, ["risk", "region", "alias"])
    assert document == {
        "version": 1,
        "type": "referral",
        "referral_id": "r-1",
        "org_id": "org",
        "created_at": "2026-01-01T10:00:00Z",
        "test": False,
        "person": {"risk": "high", "region": "MX"},  # no alias: the person never gave one
    }
    everything = referral_document("r-1", "org", NOW, CONSENTED, ["alias", "contact_method", "topic", "risk", "language", "region"])
    assert set(everything["person"]) == {"topic", "risk", "language", "region"}  # never user_key or chat_id


@settings(max_examples=100, deadline=None)
@given(consented=st.dictionaries(st.sampled_from(["topic", "risk", "alias", "user_key", "text"]), st.one_of(st.text(), st.integers())))
def test_canonical_bytes_are_stable_and_never_leak_unlisted_keys(consented: dict[str, object]) -> None:
    document = referral_document("r", "o", NOW, consented, ["topic", "risk", "alias"])
    body = canonical_json(document)
    assert body == canonical_json(json.loads(body))
    assert set(document["person"]) <= {"topic", "risk", "alias"}
    assert all(isinstance(v, str) and v for v in document["person"].values())


def test_an_alert_names_no_one() -> None:
    alert = alert_document("r-9", "org", "undeliverable", NOW)
    assert "person" not in alert and alert["type"] == "alert" and alert["alert"] == "undeliverable"


def test_backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() -> None:
    worker = ReferralWorker(object(), object(), lambda: 0.0, base_delay=10.0, max_delay=100.0, rng=random.Random(3))  # type: ignore[arg-type]
    for attempts, ceiling in [(1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0), (5, 100.0), (12, 100.0)]:
        delays = [worker.backoff(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), attempts
        assert len(set(delays)) > 1  # jittered: workers do not retry in lock-step


def test_retry_after_takes_seconds_or_a_date_and_is_capped() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 10:02:00 GMT", NOW) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 09:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("999999", NOW) == 3600.0
    assert parse_retry_after("soon", NOW) is None and parse_retry_after(None, NOW) is None


def test_only_https_or_this_machine_is_an_acceptable_url() -> None:
    assert url_is_acceptable("https://partner.example/intake")
    assert url_is_acceptable("http://127.0.0.1:8080/x") and url_is_acceptable("http://localhost/x")
    assert not url_is_acceptable("http://partner.example/intake")
    assert not url_is_acceptable("ftp://partner.example/intake")


def test_the_staff_message_shows_the_consented_fields_and_fits_telegrams_button_limit() -> None:
    referral_id = "test-00000000-0000-4000-8000-000000000000"
    document = referral_document(referral_id, "org", NOW, CONSENTED, ["risk", "region"], test=True)
    text, buttons = staff_message(document)
    assert "[TEST]" in text and referral_id in text and "risk: high" in text and "region: MX" in text
    assert "anxiety" not in text and "42" not in text
    assert [StaffDecision.unpack(data).d for _, data in buttons] == ["a", "d"]
    assert all(len(data.encode()) <= 64 for _, data in buttons)
    alert_text, alert_buttons = staff_message(alert_document(referral_id, "org", "not_acknowledged", NOW))
    assert referral_id in alert_text and alert_buttons == []


def test_the_test_vector_in_the_docs_holds() -> None:
    document = {
        "version": 1, "type": "referral", "referral_id": "0b7f8f0e-52c4-4c5e-9a59-2f3f0a3c7d11",
        "org_id": "example-crisis-partner", "created_at": "2026-11-27T09:29:30Z", "test": False,
        "person": {"topic": "anxiety", "risk": "high", "language": "es", "region": "MX"},
    }
    body = canonical_json(document)
    assert body.startswith(b'{"created_at":"2026-11-27T09:29:30Z","org_id":"example-crisis-partner","person":{"language":"es"')
    assert sign(b"example-secret", 1795771800, body) == "v1=443ce21e2c8e02d1605b42dac62d37b13f0a4405e6bd5c228150a55dd455e7bd"
