"""Keyed pseudonyms for people in the report (reviewers).

A plain hash of a reviewer id can be reversed by hashing every known id, so the
pseudonym is an HMAC under a key the report's readers do not hold. The same key
gives the same pseudonym every day, so an analyst can follow one reviewer over time
without learning who they are.
"""

from __future__ import annotations

import hashlib
import hmac

# Used only when no key is configured (demos, tests); the report says so, because
# anyone with this source can re-identify reviewers under it.
DEMO_KEY: bytes = b"riskinsight-demo-pseudonym-key-not-secret"

# Not "rv-": raw reviewer ids look like "rv-000001", and a pseudonym must never read as one.
PSEUDONYM_PREFIX = "pseud-"

# 12 hex digits = 48 bits: collisions stay negligible for tens of thousands of
# reviewers while the label stays short enough for a chart's hover box.
PREFIX_HEX_DIGITS = 12


def pseudonymise(raw_id: str, key: bytes, *, prefix: str = PSEUDONYM_PREFIX) -> str:
    """Stable keyed pseudonym of `raw_id`: `prefix` + HMAC-SHA256 hex prefix."""
    if not key:
        raise ValueError("pseudonym key must not be empty")
    digest = hmac.new(key, raw_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return prefix + digest[:PREFIX_HEX_DIGITS]


def is_demo_key(key: bytes) -> bool:
    return hmac.compare_digest(key, DEMO_KEY)
