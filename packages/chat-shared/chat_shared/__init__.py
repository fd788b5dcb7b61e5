"""What every service shares: message contracts, broker topology, settings base, runtime."""

from chat_shared.contracts import CONTRACT_VERSION
from chat_shared.protocol import PROTOCOL_VERSION
from chat_shared.settings import DatabaseSettings, SecretSettings, ServiceSettings
from chat_shared.topology import Topology, session_binding, session_key

__all__ = [
    "CONTRACT_VERSION",
    "PROTOCOL_VERSION",
    "DatabaseSettings",
    "SecretSettings",
    "ServiceSettings",
    "Topology",
    "session_binding",
    "session_key",
]
