"""Every Prometheus metric of qualimon (docs/design.md §6): definitions, the fast exposition, `/metrics`.

- `monitor.metrics.definitions`: the families, their start-up series, the cardinality budget and the
  writers' methods (`Metrics`), the database-derived `DerivedSnapshot`;
- `monitor.metrics.exposition`: values in one flat list, text cached per
  block, gzip segments; the collector on the registry;
- `monitor.metrics.http`: the `/metrics` handler.
"""

from monitor.metrics.definitions import DerivedSnapshot, Metrics

__all__ = ["DerivedSnapshot", "Metrics"]
