"""Checking results: live-bootstrap's pins, closure audits, binary-cache comparison, cross-bootstrap pairs."""
