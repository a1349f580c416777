"""HTTP basic authentication against bcrypt hashes, as exporter-toolkit does it.

bcrypt at cost 10 takes about 60 ms on these machines; Prometheus sends the
same credentials on every scrape. So each (user, hash, password) verdict is
cached, as exporter-toolkit's web/cache.go does, and bcrypt runs in a thread,
one at a time, so a burst of wrong passwords cannot stall the probes' event
loop or take every core. Unlike exporter-toolkit, the cache keys are HMACs
under a key made at start, so no password is kept in memory after its request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import random
from collections.abc import Mapping

import bcrypt

# For unknown users: a real comparison against a hash of the same cost as
# htpasswd's default, so the answer takes as long as for a known user and
# timing does not tell which user names exist (exporter-toolkit does the same).
_UNKNOWN_USER_HASH = b"$2b$10$khkXzFFoHn6H77uRupF7Zeye5q.LDJQMRny7nSP3u1jeCA9Lz.aM."
# bcrypt uses the first 72 bytes of a password; Go's bcrypt (exporter-toolkit)
# ignores the rest, where pyca's bcrypt 5 would raise.
_BCRYPT_MAX_PASSWORD = 72
CACHE_SIZE = 100


def parse_basic_authorization(header: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) of an ``Authorization: Basic ...`` header, the way Go's Request.BasicAuth reads it."""
    if header is None or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True)
    except (binascii.Error, ValueError):
        return None
    user, separator, password = decoded.partition(b":")
    return (user, password) if separator else None


class BasicAuthVerifier:
    def __init__(self) -> None:
        self._key = os.urandom(32)
        self._verdicts: dict[bytes, bool] = {}
        self._bcrypt_lock = asyncio.Lock()

    async def verify(self, users: Mapping[str, bytes], authorization: str | None) -> bool:
        credentials = parse_basic_authorization(authorization)
        if credentials is None:
            return False
        user, password = credentials
        try:
            hashed = users.get(user.decode("utf-8"))
        except UnicodeDecodeError:
            hashed = None
        known = hashed is not None
        hashed = hashed if hashed is not None else _UNKNOWN_USER_HASH
        key = self._cache_key(user, hashed, password)
        verdict = self._verdicts.get(key)
        if verdict is None:
            async with self._bcrypt_lock:
                # Another request with the same credentials may have waited for the lock too.
                verdict = self._verdicts.get(key)
                if verdict is None:
                    matches = await asyncio.get_running_loop().run_in_executor(None, _checkpw, password, hashed)
                    verdict = known and matches
                    self._remember(key, verdict)
        return verdict and known

    def _cache_key(self, *parts: bytes) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        return mac.digest()

    def _remember(self, key: bytes, verdict: bool) -> None:
        if len(self._verdicts) >= CACHE_SIZE:
            # Random eviction of a tenth, as exporter-toolkit does: cheap, and
            # not skewed towards any one client.
            for stale in random.sample(list(self._verdicts), max(CACHE_SIZE // 10, 1)):
                del self._verdicts[stale]
        self._verdicts[key] = verdict


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        # checkpw compares the hashes in constant time.
        return bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], hashed)
    except ValueError:
        return False
