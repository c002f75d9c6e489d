"""The web chat page, driven in Debian's headless Chromium (through Playwright, no browser download)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deploy.cluster import LocalSystem, free_port

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
WAIT_MS = 60_000


@pytest.fixture
async def browser_page(tmp_path: Path) -> AsyncIterator[object]:
    if not HAVE_CHROMIUM:
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # A fresh profile directory: Playwright's persistent context passes it as --user-data-dir.
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield await context.new_page()
        finally:
            await context.close()


async def test_page_streams_an_answer_with_citations_and_uploads(
    system: LocalSystem, cited_page: str, browser_page: object, tmp_path: Path
) -> None:
    from playwright.async_api import Page, expect

    page = browser_page
    assert isinstance(page, Page)
    refused: list[str] = []  # what the page's Content-Security-Policy blocked, if anything
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    response = await page.goto(system.gateway_url + "/")
    assert response is not None
    assert "script-src 'self'" in (await response.header_value("content-security-policy") or "")
    await page.click("#settings summary")
    await page.fill("#collection", f"web-{uuid.uuid4().hex[:8]}")  # leave `default` to other tests
    await page.fill("#prompt", f"How deep did the rig at {cited_page} reach?")
    await expect(page.locator("#links")).to_contain_text(cited_page)
    await page.click("#send")
    await expect(page.locator(".answer").last).to_contain_text("2,400 metres", timeout=WAIT_MS)
    citation = page.locator(".citation a").first
    await expect(citation).to_have_attribute("href", cited_page, timeout=WAIT_MS)
    first_answer = await page.locator(".answer").last.text_content()

    await expect(page.locator(".notes")).to_have_count(0)  # nothing went wrong: no notes

    # a follow-up carries the conversation so far, and a link that does not load is said
    dead_link = f"http://127.0.0.1:{free_port()}/gone"  # nothing listens there
    await page.fill("#prompt", f"And how deep was it? {dead_link}")
    async with page.expect_request("**/v1/chat") as follow_up:
        await page.click("#send")
    sent = json.loads((await follow_up.value).post_data or "{}")
    assert sent["history"] == [
        {"role": "user", "content": f"How deep did the rig at {cited_page} reach?"},
        {"role": "assistant", "content": first_answer},
    ]
    await expect(page.locator(".answer")).to_have_count(2)
    await expect(page.locator(".notes li").first).to_contain_text(dead_link, timeout=WAIT_MS)

    topic = f"flumox{uuid.uuid4().hex[:6]}"
    note = tmp_path / f"{topic}.md"
    note.write_text(f"# {topic}\n\nThe {topic} lever is painted green.\n")
    await page.set_input_files("#file", str(note))
    await page.click("#upload-form button")
    item = page.locator("#document-list li", has_text=note.name)
    await expect(item).to_contain_text("ready", timeout=WAIT_MS)
    assert refused == []
