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


def test_a_prompt_over_the_limit_drops_old_turns_then_the_last_sources_never_the_question() -> None:
    from proto.prompt import PromptSource, build_prompt
    from services.gateway.prompt import fit_prompt

    sources = [PromptSource(n, f"page {n}", "x" * 100) for n in (1, 2, 3)]
    history = _turns(("system", "Be brief."), ("user", "y" * 100), ("assistant", "z" * 100))
    whole = build_prompt("why?", sources, history)
    assert fit_prompt("why?", sources, history, len(whole)) == (whole, 3)
    prompt, kept = fit_prompt("why?", sources, history, len(whole) - 150)  # both old turns go
    assert (kept, "y" * 100 in prompt, "z" * 100 in prompt, "Be brief." in prompt) == (3, False, False, True)
    prompt, kept = fit_prompt("why?", sources, history, len(whole) - 300)
    assert kept == 2 and "page 3" not in prompt and "Be brief." in prompt
    prompt, kept = fit_prompt("why?", sources, history, 10)
    assert kept == 0 and prompt == build_prompt("why?", [], [])


def test_the_gateways_prompt_limit_is_the_inference_services() -> None:
    from services.gateway.settings import GatewaySettings
    from services.inference.settings import InferenceSettings

    assert GatewaySettings().max_model_prompt_chars == InferenceSettings().max_prompt_chars
