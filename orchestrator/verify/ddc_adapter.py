"""Reads the verdict of the stage0 diverse double-compiling check for the chain page.

The check (x86 tools built from the AMD64 seed, compared bit for bit with ``.#stage0``'s) is
built elsewhere; this adapter is deliberately small and tolerant so it can follow that check's
output format: a JSON object whose tools each say equal or not, in any of these shapes

* ``{"tools": {"M2-Planet": {"status": "identical"}, ...}}`` (or ``"equal": true``),
* ``{"tools": [{"name": "M2-Planet", "status": "differs"}, ...]}``,
* ``{"M2-Planet": "identical", "hex2": "differs", ...}`` (every value a verdict word),
* ``{"files": [{"step": "x86/artifact/hex2", "identical": false}, ...], "identical": false}``
  (the shape of the ``ddc-stage0`` check's ``ddc.json``: one entry per compared file; a
  top-level ``identical`` is the check's own overall verdict and wins).

A list entry is named by ``name``, ``tool`` or ``step`` (the first that is a string).

Verdict words: ``identical``, ``equal``, ``same``, ``ok``, ``pass`` mean equal; ``differs``,
``different``, ``mismatch``, ``fail`` mean the tool differs; any other value makes the file not a
DDC result (so another JSON file is never taken for one).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

EQUAL_WORDS = {"identical", "equal", "same", "ok", "pass", "passed", "bit-identical"}
DIFFER_WORDS = {"differs", "differ", "different", "mismatch", "fail", "failed"}


class DdcResult(BaseModel):
    tools: dict[str, bool]  # tool -> bit-identical
    overall: bool | None = None  # the check's own verdict, when it gives one

    @property
    def equal(self) -> bool:
        if self.overall is not None:
            return self.overall and all(self.tools.values())
        return bool(self.tools) and all(self.tools.values())

    def summary(self) -> str:
        same = sorted(t for t, ok in self.tools.items() if ok)
        differ = sorted(t for t, ok in self.tools.items() if not ok)
        text = f"{len(same)} of {len(self.tools)} compared bit-identical"
        if differ:
            text += f"; differ: {', '.join(differ)}"
        return text


def _verdict(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in EQUAL_WORDS:
            return True
        return False if word in DIFFER_WORDS else None
    if isinstance(value, dict):
        for key in ("equal", "identical", "same"):
            if isinstance(value.get(key), bool):
                return bool(value[key])
        for key in ("status", "verdict", "result"):
            if isinstance(value.get(key), str):
                return _verdict(value[key])
    return None


def load_ddc(data: Any) -> DdcResult | None:
    """The DDC verdict in ``data`` (parsed JSON), or ``None`` when it is not one."""
    if not isinstance(data, dict) or not data:
        return None
    tools_any = data.get("tools", data.get("files", data))
    overall = data.get("identical") if isinstance(data.get("identical"), bool) else None
    tools: dict[str, bool] = {}
    if isinstance(tools_any, list):
        for item in tools_any:
            names = (
                [item.get(k) for k in ("name", "tool", "step")] if isinstance(item, dict) else []
            )
            name = next((n for n in names if isinstance(n, str)), None)
            ok = _verdict(item)
            if not isinstance(name, str) or ok is None:
                return None
            tools[name] = ok
    elif isinstance(tools_any, dict):
        for name, value in tools_any.items():
            ok = _verdict(value)
            if ok is None:
                return None
            tools[str(name)] = ok
    else:
        return None
    return DdcResult(tools=tools, overall=overall) if tools else None
