"""The engine layer: sources and checks, loading, residency, and the `Engine` that renders `Job`s."""
