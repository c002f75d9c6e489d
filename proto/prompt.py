"""The prompt a generation model is sent: the one builder of its wire format.

The gateway builds every chat's prompt with `build_prompt`, and so do the
tests and benchmarks; the CPU stand-in of the `generate` model parses it
(`deploy/triton/models/generate/1/prompt_format.py`, which runs inside Triton
and cannot import this package). A real LLM reads it as an instruction::

    Answer the question using only the numbered sources below. Cite sources like [1].

    Conversation so far:            (only when there is one)
    Instructions: Answer in French.
    User: an earlier question

    Sources:                        (only when there are some)
    [1] https://example.com/page
    The page's text, on as many lines as it has.

    Question: What is ...?
    Answer:

Every conversation line starts with its role and every label and question is
one line, so nothing a user or a page writes can pass for a `Sources:`,
`[n] ` or `Question:` line; blank lines inside a source are dropped, as a
blank line followed by `[n] ` is where the next source starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from proto.chat import ChatTurn

__all__ = ["INSTRUCTION", "ROLES", "PromptSource", "build_prompt", "one_line"]

INSTRUCTION = "Answer the question using only the numbered sources below. Cite sources like [1]."

# The name each chat role goes by in the conversation block.
ROLES = {"system": "Instructions", "developer": "Instructions", "user": "User", "assistant": "Assistant"}


class PromptSource(msgspec.Struct, frozen=True):
    """A numbered source: its number, the label on its header line, and its text."""

    n: int
    label: str
    text: str


def build_prompt(question: str, sources: Sequence[PromptSource], history: Sequence[ChatTurn] = ()) -> str:
    """The whole prompt: the instruction, the history and sources blocks (if any), the question."""
    parts = [INSTRUCTION, ""]
    if history:
        parts.append("Conversation so far:")
        parts.extend(f"{ROLES[turn.role]}: {one_line(turn.content)}" for turn in history)
        parts.append("")
    if sources:
        parts.append("Sources:")
        for source in sources:
            body = "\n".join(line for line in source.text.splitlines() if line.strip())
            parts.append(f"[{source.n}] {one_line(source.label)}\n{body}\n")
    parts.append(f"Question: {one_line(question)}")
    parts.append("Answer:")
    return "\n".join(parts)


def one_line(text: str) -> str:
    """`text` with every run of white space (line breaks too) made one space."""
    return " ".join(text.split())
