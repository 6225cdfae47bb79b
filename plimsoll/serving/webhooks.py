"""MLflow webhook deliveries: the signature check (HMAC-SHA256, as mlflow.webhooks signs them).

A delivery only wakes the gateway's watcher; the registry stays the source of truth, so a
forged or replayed delivery could at most cause an early poll, and is refused anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"
MAX_AGE_S = 300  # older deliveries are replays
ALIAS_ENTITY = "model_version_alias"


def sign(secret: str, delivery_id: str, timestamp: str, payload: str) -> str:
    """The signature MLflow sends: "v1," + base64(HMAC-SHA256(id.timestamp.payload))."""
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.{payload}".encode(),
                      hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], payload: bytes,
           now: float | None = None) -> str | None:
    """None when the delivery is genuine and fresh, else why it is refused."""
    signature = headers.get(SIGNATURE_HEADER.lower(), "")
    timestamp = headers.get(TIMESTAMP_HEADER.lower(), "")
    delivery = headers.get(DELIVERY_HEADER.lower(), "")
    if not (signature and timestamp and delivery):
        return (f"missing {SIGNATURE_HEADER}, {TIMESTAMP_HEADER} or {DELIVERY_HEADER}: "
                "register the webhook with a secret")
    try:
        sent = int(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} is not a Unix time"
    if abs((now or time.time()) - sent) > MAX_AGE_S:
        return f"the delivery is more than {MAX_AGE_S} s old (a replay, or a clock skew)"
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return "the payload is not UTF-8"
    if not hmac.compare_digest(sign(secret, delivery, timestamp, text), signature):
        return "the signature does not match: check the webhook's secret"
    return None
