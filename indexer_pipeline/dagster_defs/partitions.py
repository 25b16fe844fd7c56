"""Source units as Dagster dynamic partitions: one per task folder or top-level document entry."""

import dagster as dg

source_units = dg.DynamicPartitionsDefinition(name="source_units")


def register_units(instance: dg.DagsterInstance, keys: list[str]) -> list[str]:
    """Add the keys not yet registered; returns those added."""
    known = set(instance.get_dynamic_partitions(source_units.name))
    new = [k for k in keys if k not in known]
    if new:
        instance.add_dynamic_partitions(source_units.name, new)
    return new
