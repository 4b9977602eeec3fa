"""Host projects that run Signalpost inside them (docs/integrate.md), and their hooks."""
