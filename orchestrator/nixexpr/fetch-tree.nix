# The store path of a locked (or fetchable) source, e.g. the pinned live-bootstrap input.
# spec: builtins.fetchTree's argument, passed from Python as JSON (upstream/locate.py, diff).
spec: (builtins.fetchTree spec).outPath
