"""stage0 support: a kaem script read without running it (stage0/kaem.py's reader, the
interpreter's variable and alias rules), for the reader's tests and golden cases."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.stage0.kaem import KaemReader


def parse_script(
    text: str, file: str = "<script>", env: Mapping[str, str] | None = None
) -> list[tuple[list[str], int]]:
    """Every command of a script with static variables (assignments and aliases applied as
    kaem would, nothing run)."""
    variables = dict(env or {})
    aliases: dict[str, str] = {}
    reader = KaemReader(text, file)
    out = []
    while (cmd := reader.command(variables.get, aliases, [])) is not None:
        tokens, line = cmd
        if not tokens:
            continue
        if "=" in tokens[0]:
            name, _, value = tokens[0].partition("=")
            variables[name] = value
        elif tokens[0] == "alias" and len(tokens) > 1 and "=" in tokens[1]:
            name, _, value = tokens[1].partition("=")
            aliases[name] = value
        out.append((tokens, line))
    return out
