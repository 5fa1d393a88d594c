"""The reliability suite: generated bad inputs, injected faults, load on the server (docs/reliability.md)."""
