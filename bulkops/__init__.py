"""Bulkops command line, settings and the local development runtime."""
