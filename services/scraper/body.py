"""Reading a response's body without trusting the server about its size or type.

Only HTML, XHTML and plain text are read. A body is read as a stream and
the connection abandoned as soon as it passes the cap (a declared length
over the cap is refused unread); robots.txt reads only the head of its body.
Decoding to text runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from services.scraper.charset import decode_body
from services.scraper.errors import BodyTooLarge, UnsupportedContentType

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

__all__ = ["SUPPORTED_CONTENT_TYPES", "read_head", "read_text"]

SUPPORTED_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain"})
_MARKUP_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_CHUNK_BYTES = 64 * 1024


async def read_text(requested: str, url: URL, response: aiohttp.ClientResponse, *, max_bytes: int) -> str:
    """The body as text; `UnsupportedContentType` or `BodyTooLarge` instead of reading what we refuse."""
    content_type = response.content_type.lower()
    if content_type not in SUPPORTED_CONTENT_TYPES:
        raise UnsupportedContentType(requested, f"{url} is {content_type}, not HTML, XHTML or plain text")
    body = await _read_capped(requested, response, max_bytes)
    return await asyncio.to_thread(decode_body, body, response.charset, markup=content_type in _MARKUP_TYPES)


async def _read_capped(requested: str, response: aiohttp.ClientResponse, cap: int) -> bytes:
    """Read the (decompressed) body as a stream; abandon the connection past ``cap`` bytes."""
    too_large = BodyTooLarge(requested, f"body larger than {cap} bytes")
    if response.content_length is not None and response.content_length > cap:
        response.close()
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        size += len(chunk)
        if size > cap:
            response.close()
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_head(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The first ``limit`` bytes of the body; the rest is not read."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        chunks.append(chunk[: limit - size])
        size += len(chunks[-1])
        if size >= limit:
            response.close()
            break
    return b"".join(chunks)
