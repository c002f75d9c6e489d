"""The prompt the gateway sends to the generation model.

The format is the contract with `deploy/triton/models/generate` (see
`deploy/triton/README.md`): numbered sources, then the question. A real LLM
reads it as an instruction; the CPU stand-in parses it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PromptSource", "build_prompt"]

_INSTRUCTION = "Answer the question using only the numbered sources below. Cite sources like [1]."


class PromptSource:
    """A numbered source: a label on its header line and its text."""

    __slots__ = ("label", "n", "text")

    def __init__(self, n: int, label: str, text: str) -> None:
        self.n = n
        self.label = label
        self.text = text


def build_prompt(question: str, sources: Sequence[PromptSource]) -> str:
    """The whole prompt: the instruction, the sources block (if any) and the question."""
    parts = [_INSTRUCTION, ""]
    if sources:
        parts.append("Sources:")
        for source in sources:
            # A blank line inside a source would read as the end of its block.
            body = "\n".join(line for line in source.text.splitlines() if line.strip())
            parts.append(f"[{source.n}] {_one_line(source.label)}\n{body}\n")
    parts.append(f"Question: {_one_line(question)}")
    parts.append("Answer:")
    return "\n".join(parts)


def _one_line(text: str) -> str:
    return " ".join(text.split())
