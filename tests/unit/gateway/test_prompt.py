"""Which earlier turns a chat's prompt keeps (the prompt's parsing is in tests/unit/inference)."""

from __future__ import annotations

from proto.chat import ChatTurn
from services.gateway.prompt import recent_history


def _turns(*pairs: tuple[str, str]) -> list[ChatTurn]:
    return [ChatTurn(role=role, content=content) for role, content in pairs]


def test_instructions_come_first_then_the_latest_turns_that_fit() -> None:
    history = _turns(
        ("user", "first question " * 10),
        ("system", "Be brief."),
        ("assistant", "first answer"),
        ("user", "second question"),
        ("assistant", "second answer"),
    )
    kept = recent_history(history, max_chars=60)
    assert kept == _turns(
        ("system", "Be brief."),
        ("assistant", "first answer"),
        ("user", "second question"),
        ("assistant", "second answer"),
    )
    assert recent_history(history, max_chars=0) == []


def test_a_turn_that_does_not_fit_stops_older_ones_from_skipping_ahead() -> None:
    history = _turns(("user", "old"), ("assistant", "x" * 100), ("user", "new"))
    assert recent_history(history, max_chars=50) == _turns(("user", "new"))


def test_unknown_roles_and_empty_turns_are_dropped_and_lines_joined() -> None:
    history = _turns(("tool", "{}"), ("user", "  "), ("developer", "Use\nmetric\n\nunits."))
    assert recent_history(history, max_chars=100) == _turns(("developer", "Use metric units."))
