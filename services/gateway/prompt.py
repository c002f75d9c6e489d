"""What of a chat goes into the model's prompt: which turns, which sources, within its limit.

The prompt's format itself is `proto.prompt` (the contract with the
`generate` model); this module decides what it holds.
"""

from __future__ import annotations

from collections.abc import Sequence

from proto.chat import ChatTurn
from proto.prompt import ROLES, PromptSource, build_prompt, one_line

__all__ = ["fit_prompt", "recent_history"]


def recent_history(history: Sequence[ChatTurn], max_chars: int) -> list[ChatTurn]:
    """The turns a prompt keeps: instructions first, then the latest turns, within `max_chars`.

    Turns of an unknown role or without text are dropped; a turn that does not
    fit ends the selection (older turns never skip ahead of a newer one).
    """
    turns = [ChatTurn(role=t.role, content=one_line(t.content)) for t in history if t.role in ROLES]
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


def _split(turns: Sequence[ChatTurn]) -> tuple[list[ChatTurn], list[ChatTurn]]:
    """The application's instructions, and the conversation's turns, each in order."""
    told = [t for t in turns if ROLES.get(t.role) == "Instructions"]
    return told, [t for t in turns if ROLES.get(t.role) != "Instructions"]


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
