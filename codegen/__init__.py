"""What another language or a document must repeat of the wire, generated from `chat_contracts`.

`python -m codegen` (`make generate`) writes, from the pydantic models and the topology:
- `web/src/generated/protocol.ts`: the page's protocol types and constants;
- `docs/asyncapi.yaml`: the broker as an AsyncAPI 3.0 document;
- `docs/asyncapi.md`: that document rendered for people.

Nothing it writes is edited by hand: tests/unit/test_generated.py fails when a committed file
differs from what the models generate now.
"""
