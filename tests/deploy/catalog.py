"""What the deployment files must agree with, derived from the code (nothing listed by hand):

- the commands the image runs: the console scripts of the workspace members;
- the settings each command reads: the pydantic-settings class its package defines (or, for
  chatctl, the one it imports), and the environment variable of every field.
"""

from __future__ import annotations

import importlib
import inspect
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Command:
    script: str  # the console script, e.g. "chat-gateway"
    target: str  # "chat_gateway.main:run"
    settings: type[BaseSettings]

    @property
    def env(self) -> frozenset[str]:
        return env_names(self.settings)


def env_names(settings: type[BaseSettings]) -> frozenset[str]:
    """The environment variables a settings class reads (upper-case: our one naming scheme)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return frozenset(names)


def _settings_class(target: str) -> type[BaseSettings]:
    module_name = target.partition(":")[0]
    package = module_name.partition(".")[0]
    try:
        module = importlib.import_module(f"{package}.settings")
        defined = [
            cls
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseSettings) and cls.__module__ == module.__name__
        ]
    except ModuleNotFoundError:  # a tool such as chatctl: the class its module defines
        module = importlib.import_module(module_name)
        classes = [
            cls
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseSettings) and cls is not BaseSettings
        ]
        defined = [cls for cls in classes if cls.__module__ == module.__name__] or classes
    if len(defined) != 1:
        raise LookupError(f"{target}: expected one settings class, found {defined}")
    return defined[0]


@cache
def commands() -> dict[str, Command]:
    """Every console script of the workspace's services and packages, with its settings."""
    found: dict[str, Command] = {}
    for pyproject in sorted(
        [*ROOT.glob("services/*/pyproject.toml"), *ROOT.glob("packages/*/pyproject.toml")]
    ):
        scripts = tomllib.loads(pyproject.read_text())["project"].get("scripts", {})
        for script, target in scripts.items():
            found[script] = Command(script, target, _settings_class(target))
    return found


def services() -> dict[str, Command]:
    """The five long-running services: the `chat-*` scripts."""
    return {name: c for name, c in commands().items() if name.startswith("chat-")}


def all_settings() -> frozenset[str]:
    """Every variable some command of ours reads (the services, and chatctl for migrations)."""
    return frozenset().union(*(c.env for c in commands().values()))
