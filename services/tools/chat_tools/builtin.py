"""The tools this service ships with."""

from __future__ import annotations

from chat_tools.registry import JsonObject, Tool, ToolContext, ToolRegistry


async def _who_am_i(arguments: JsonObject, context: ToolContext) -> JsonObject:
    user = context.user
    return {
        "name": user.name,
        "email": user.email,
        "user_id": str(user.user_id),
        "org_id": str(user.org_id),
    }


def _who_am_i_answer(output: JsonObject) -> str:
    return (
        f"You are **{output['name']}** ({output['email']}).\n\n"
        f"- User id: `{output['user_id']}`\n"
        f"- Organisation id: `{output['org_id']}`"
    )


WHO_AM_I = Tool(
    name="who_am_i",
    description="Returns the signed-in user's name, email, user id and organisation id.",
    input_schema={"type": "object", "properties": {}, "additionalProperties": False},
    handler=_who_am_i,
    answer=_who_am_i_answer,
)


def default_registry() -> ToolRegistry:
    return ToolRegistry([WHO_AM_I])
