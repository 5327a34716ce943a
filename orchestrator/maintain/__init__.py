"""Maintainers: change reports between two upstream revisions, and all-or-nothing repository changes."""
