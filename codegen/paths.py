"""Where the generated files go, and where the Node tools that help write them live."""

from __future__ import annotations

from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parent.parent

# Relative to a root (the repository, or a temporary folder when the test regenerates).
PROTOCOL_TS: Final = Path("web/src/generated/protocol.ts")
ASYNCAPI_YAML: Final = Path("docs/asyncapi.yaml")
ASYNCAPI_MD: Final = Path("docs/asyncapi.md")

# The page's devDependency json-schema-to-typescript (installed by `make web`) and the AsyncAPI
# renderer of tools/asyncapi (installed by `make tools`).
WEB: Final = REPO / "web"
ASYNCAPI_TOOLS: Final = REPO / "tools" / "asyncapi"

COMMAND: Final = "make generate"
