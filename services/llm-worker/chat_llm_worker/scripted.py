"""What the scripted model says and how it cuts it into deltas (no SDK, cheap to import: the
benchmark's load generator and minimal relay use it too)."""

from __future__ import annotations

# A scripted prompt that starts with this is answered with the rest of the prompt, verbatim:
# how tests, demos and the benchmark make the scripted model say something specific.
ECHO_PREFIX = "echo:"


def scripted_reply(text: str) -> str:
    """The scripted model's answer to `text`: deterministic, and honest about what it is."""
    stripped = text.strip()
    if stripped.lower().startswith(ECHO_PREFIX):
        return stripped[len(ECHO_PREFIX) :].lstrip()
    quoted = stripped if len(stripped) <= 200 else stripped[:200] + "…"
    return (
        "This answer comes from the **offline scripted model**: no AI model was called. "
        "Set `ANTHROPIC_API_KEY` to have Claude answer instead.\n\n"
        f"You wrote:\n\n> {quoted}\n\n"
        "What the scripted model can show you:\n\n"
        "1. answers that stream token by token;\n"
        "2. Markdown: *emphasis*, `code`, lists and tables;\n"
        "3. the whole path through the gateway, orchestrator, worker and history.\n\n"
        "| Tier | Handled by | Cost |\n|---|---|---|\n"
        "| 1 | a tool, e.g. *who am I* | $0 |\n| 2 | the LLM worker | per token |\n\n"
        '```python\nprint("hello from the scripted model")\n```\n'
    )


def split_deltas(reply: str) -> list[str]:
    """Cut a reply into 3- and 4-character deltas, the size of a real model's tokens."""
    deltas: list[str] = []
    position, size = 0, 3
    while position < len(reply):
        deltas.append(reply[position : position + size])
        position += size
        size = 7 - size
    return deltas
