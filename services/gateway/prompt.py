"""The prompt the gateway sends to the generation model.

The format is the contract with `deploy/triton/models/generate` (see
`deploy/triton/README.md`): the application's instructions and the
conversation so far (if any), numbered sources, then the question. A real LLM
reads it as an instruction; the CPU stand-in parses it (and answers from the
sources alone). Every history line starts with its role, so no line of it can
pass for a `Sources:` or `Question:` line.
"""

from __future__ import annotations

from collections.abc import Sequence

from proto.chat import ChatTurn

__all__ = ["PromptSource", "build_prompt", "fit_prompt", "recent_history"]

_ROLES = {"system": "Instructions", "developer": "Instructions", "user": "User", "assistant": "Assistant"}

_INSTRUCTION = "Answer the question using only the numbered sources below. Cite sources like [1]."


class PromptSource:
    """A numbered source: a label on its header line and its text."""

    __slots__ = ("label", "n", "text")

    def __init__(self, n: int, label: str, text: str) -> None:
        self.n = n
        self.label = label
        self.text = text


def recent_history(history: Sequence[ChatTurn], max_chars: int) -> list[ChatTurn]:
    """The turns a prompt keeps: instructions first, then the latest turns, within `max_chars`.

    Turns of an unknown role or without text are dropped; a turn that does not
    fit ends the selection (older turns never skip ahead of a newer one).
    """
    turns = [ChatTurn(role=t.role, content=_one_line(t.content)) for t in history if t.role in _ROLES]
    turns = [t for t in turns if t.content]
    kept: list[ChatTurn] = []
    budget = max_chars
    instructions, conversation = _split(turns)
    for turn in [*instructions, *reversed(conversation)]:
        if len(turn.content) > budget:
            break
        kept.append(turn)
        budget -= len(turn.content)
    told, said = _split(kept)
    return [*told, *reversed(said)]


def build_prompt(question: str, sources: Sequence[PromptSource], history: Sequence[ChatTurn] = ()) -> str:
    """The whole prompt: the instruction, the history and sources blocks (if any), the question."""
    parts = [_INSTRUCTION, ""]
    if history:
        parts.append("Conversation so far:")
        parts.extend(f"{_ROLES[turn.role]}: {_one_line(turn.content)}" for turn in history)
        parts.append("")
    if sources:
        parts.append("Sources:")
        for source in sources:
            # A blank line inside a source would read as the end of its block.
            body = "\n".join(line for line in source.text.splitlines() if line.strip())
            parts.append(f"[{source.n}] {_one_line(source.label)}\n{body}\n")
    parts.append(f"Question: {_one_line(question)}")
    parts.append("Answer:")
    return "\n".join(parts)


def _split(turns: Sequence[ChatTurn]) -> tuple[list[ChatTurn], list[ChatTurn]]:
    """The application's instructions, and the conversation's turns, each in order."""
    told = [t for t in turns if _ROLES.get(t.role) == "Instructions"]
    return told, [t for t in turns if _ROLES.get(t.role) != "Instructions"]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def fit_prompt(
    question: str, sources: Sequence[PromptSource], history: Sequence[ChatTurn], max_chars: int
) -> tuple[str, int]:
    """The prompt within the model's `max_chars`, and how many of `sources` it kept.

    What gives way first: the oldest turns of the conversation, then the last
    sources (document passages come after the pages the user linked), then
    the instructions. The question always stays; a prompt that is still too
    long is the model's to refuse.
    """
    told, said = _split(history)
    kept = len(sources)
    while True:
        prompt = build_prompt(question, sources[:kept], [*told, *said])
        if len(prompt) <= max_chars:
            return prompt, kept
        if said:
            said.pop(0)
        elif kept:
            kept -= 1
        elif told:
            told.pop(0)
        else:
            return prompt, kept
