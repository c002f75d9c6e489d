"""The prompt format the ``generate`` model reads; ``proto/prompt.py`` builds it.

A prompt with sources looks like this (see ``deploy/triton/README.md``)::

    Answer the question using only the numbered sources below. Cite sources like [1].

    Sources:
    [1] https://example.com/page
    First source's text, possibly many lines.

    [2] report.pdf, page 3
    Second source's text.

    Question: What is ...?
    Answer:

A ``Conversation so far:`` block (one line a turn, each starting with its
role) may come before ``Sources:``; this model does not use it.  A prompt
without a ``Sources:`` line is just a question with no sources.  A
source header is ``[n] <label>``; its text runs until the next ``\\n\\n[m] ``
header or ``\\n\\nQuestion: ``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ParsedPrompt",
    "PromptSource",
    "parse_prompt",
    "split_sentences",
]

_SOURCES_LINE = re.compile(r"(?m)^Sources:[ \t]*\n")
_QUESTION_MARK = "Question: "
_ANSWER_TAIL = re.compile(r"\n?Answer:\s*\Z")
_SOURCE_SPLIT = re.compile(r"\n\n(?=\[\d+\] )")
_HEADER = re.compile(r"\[(\d+)\] ?([^\n]*)\n?")
# A sentence ends at . ! or ? followed by white space; a line break ends one too.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class PromptSource:
    """One numbered source: its citation number, its label and its text."""

    number: int
    label: str
    text: str


@dataclass(frozen=True)
class ParsedPrompt:
    """The question and the sources a prompt holds (no sources: an empty tuple)."""

    question: str
    sources: tuple[PromptSource, ...]


def _question_of(tail: str) -> str:
    """Return the question in ``tail`` (the text after the last ``Question:``)."""
    index = tail.rfind(_QUESTION_MARK)
    question = tail[index + len(_QUESTION_MARK) :] if index >= 0 else tail
    return _ANSWER_TAIL.sub("", question).strip()


def _parse_sources(block: str) -> tuple[PromptSource, ...]:
    """Parse the text between ``Sources:`` and ``Question:`` into sources."""
    sources: list[PromptSource] = []
    for part in _SOURCE_SPLIT.split(block.strip("\n")):
        header = _HEADER.match(part)
        if header is None:
            continue
        text = part[header.end() :].strip()
        sources.append(PromptSource(int(header.group(1)), header.group(2).strip(), text))
    return tuple(sources)


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Split a prompt into its question and numbered sources."""
    marker = _SOURCES_LINE.search(prompt)
    if marker is None:
        return ParsedPrompt(_question_of(prompt), ())
    rest = prompt[marker.end() :]
    question_at = rest.rfind("\n\n" + _QUESTION_MARK)
    if question_at < 0:
        question_at = rest.rfind("\n" + _QUESTION_MARK)
    if question_at < 0:
        return ParsedPrompt("", _parse_sources(rest))
    return ParsedPrompt(_question_of(rest[question_at:]), _parse_sources(rest[:question_at]))


def split_sentences(text: str) -> list[str]:
    """Split a source's text into sentences (lines first, then sentence ends)."""
    sentences: list[str] = []
    for line in text.splitlines():
        for piece in _SENTENCE_END.split(line):
            sentence = _WHITESPACE.sub(" ", piece).strip()
            if sentence:
                sentences.append(sentence)
    return sentences
