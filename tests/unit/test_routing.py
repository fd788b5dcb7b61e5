import pytest

from chat_orchestrator.routing import normalise, route


@pytest.mark.parametrize(
    "text",
    [
        "who am I",
        "Who am I?",
        "  WHO AM I ?! ",
        "whoami",
        "who am i logged in as",
        "What's my name?",
        "what\u2019s my name",
        "what is my name",
        "which account am I using",
        "show me my profile",
    ],
)
def test_identity_questions_go_to_the_tool(text: str) -> None:
    decision = route(text)
    assert decision.tier == 1 and decision.tool == "who_am_i"


@pytest.mark.parametrize(
    "text",
    [
        "summarise what Finnest does",
        "who am I to judge this poem?",
        "tell me who am i in the story",
        "whoami --help",
        "",
        "what is my name spelled backwards",
    ],
)
def test_everything_else_goes_to_the_llm(text: str) -> None:
    decision = route(text)
    assert decision.tier == 2 and decision.tool is None


def test_normalise_collapses_case_space_and_trailing_punctuation() -> None:
    assert normalise("  Who   AM i ?? ") == "who am i"
