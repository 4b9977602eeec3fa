"""Riverside Runners: a small Django site with its own users, into which Signalpost is
installed as apps (docs/integrate.md)."""
