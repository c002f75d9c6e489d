"""Collections per tenant: with API keys on, a key sees only its own documents.

A client names a collection (`[A-Za-z0-9_-]{1,48}`); the gateway stores and
searches it as `k<key id>-<name>`, where the key id is the first 12 hex
digits of the key's SHA-256. Two keys naming the same collection therefore
never share documents, and a key cannot name another key's collection (a
client-sent name cannot contain the prefix's form: the prefix is added, never
parsed from input). With API keys off, names are used as they are.
"""

from __future__ import annotations

from proto.documents import OPEN_SCOPE

__all__ = ["COLLECTION_PATTERN", "Tenant"]

COLLECTION_PATTERN = r"^[A-Za-z0-9_-]{1,48}$"
_KEY_ID_CHARS = 12


class Tenant:
    """Maps a client's collection names to the stored ones and back."""

    __slots__ = ("_prefix", "scope")

    def __init__(self, key_id: str | None) -> None:
        self._prefix = f"k{key_id[:_KEY_ID_CHARS]}-" if key_id else ""
        # the first token of its documents' ids and state keys (`proto.documents.document_id_for`)
        self.scope = f"k{key_id[:_KEY_ID_CHARS]}" if key_id else OPEN_SCOPE

    def collection(self, name: str) -> str:
        """The stored name of the client's collection `name`."""
        return f"{self._prefix}{name}"

    def client_name(self, stored: str) -> str | None:
        """The client's name of a stored collection, or None when it belongs to another tenant."""
        if not self._prefix:
            return stored
        if stored.startswith(self._prefix):
            return stored[len(self._prefix) :]
        return None
