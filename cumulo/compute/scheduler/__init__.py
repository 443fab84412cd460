"""Choosing a host for a server: candidates, filters, weighers (see README.md in this folder)."""
