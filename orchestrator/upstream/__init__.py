"""Reading upstream: a live-bootstrap tree (checkout, data-only snapshot, committed snapshot) into the typed model.

Only this stage reads live-bootstrap's files; everything after it takes a ``Chain``.
"""
