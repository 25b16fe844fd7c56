"""The one Dagster resource, `indexer`: its fields are derived from the settings declared in config.py.

Each setting declared with `resource=...` becomes an optional field of the same type (Dagster's config
types: int, float or str); left empty, the environment's value (or the default) applies. Deriving the
fields, rather than listing them again, keeps the Launchpad, the environment variables and the README
from drifting apart. API keys and the alert webhook are declared secret, so they are never fields: run
config is stored and shown in the UI.

Validation is `Settings.from_env()`'s: the first step of a run fails with the same words the CLI prints.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, get_args

import dagster as dg
from pydantic import Field, create_model

from ..config import Settings, SettingsError, env_name, resource_fields
from ..pipeline import Indexer


class _IndexerResourceBase(dg.ConfigurableResource):
    def settings(self) -> Settings:
        """The environment's settings with this resource's fields applied, validated (SettingsError)."""
        fields = resource_fields()
        return Settings.from_env(**{fields[k]: v for k, v in self.model_dump().items()})

    @contextmanager
    def indexer(self, context: dg.AssetExecutionContext | dg.OpExecutionContext) -> Iterator[Indexer]:
        try:
            settings = self.settings()
        except SettingsError as e:
            # A Failure shows its words as the step's error, not under a stack trace of Dagster's.
            raise dg.Failure(description=str(e), allow_retries=False) from None
        with Indexer(settings, log=context.log.warning) as ix:
            yield ix


def _config_type(annotation: Any) -> type:
    """The Dagster config type that carries a setting: int or float as declared, anything else as text
    (paths, URLs, names, choices), which Settings then parses and checks."""
    if annotation in (int, float):
        return annotation
    for arg in get_args(annotation):
        found = _config_type(arg)
        if found is not str:
            return found
    return str


def _field(setting: str) -> tuple[Any, Any]:
    info = Settings.model_fields[setting]
    return (
        _config_type(info.annotation) | None,
        Field(None, description=f"{info.description} (empty: ${env_name(setting)} or the default)"),
    )


IndexerResource = create_model(
    "IndexerResource",
    __base__=_IndexerResourceBase,
    __module__=__name__,
    __doc__="Indexing settings for a run; every field left empty takes its environment variable or default.",
    **{field: _field(setting) for field, setting in resource_fields().items()},
)
