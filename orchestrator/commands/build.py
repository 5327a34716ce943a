"""``orchestrator build [TARGET] [--until STEP] [--json] [--keep-failed]``: ``nix build`` with a view.

TARGET is a step attribute (``mes-0.27.1-pass1``), ``stage0`` or ``live-bootstrap`` (the default),
or any installable (``FLAKE#ATTR``, a store path). Step attributes contain dots, so the installable
quotes them: ``.#"mes-0.27.1-pass1"``. ``--until STEP`` builds the chain up to that step.

Before building, the derivation closure is evaluated (no build) to learn what Nix will build and
which distfiles are missing from the store. Then ``nix build -L --log-format internal-json`` runs;
its events (:mod:`orchestrator.build.nixlog`) drive a live view on stderr (a terminal) or one line per
started/finished derivation (anything else). Exit code: the build's.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from orchestrator import display, nixcli
from orchestrator.build import pinreport, setuid
from orchestrator.build.closure import FETCHURL
from orchestrator.build.nixlog import BuildLog, store_name
from orchestrator.build.plan import (
    BuildFailed,
    MissingDistfiles,
    Plan,
    make_plan,
    missing_message,
)
from orchestrator.build.progress import (
    Durations,
    LiveView,
    StepIndex,
    eta,
    failure_report,
    fmt_seconds,
)
from orchestrator.build.targets import (
    bridge_steps,
    chain_steps,
    installable_args,
    resolve_target,
    step_index,
)
from orchestrator.build.watch import Watched, watch
from orchestrator.commands import options
from orchestrator.commands.build_view import LiveDisplay, PlainReporter, summary_table
from orchestrator.errors import OrchestratorError

STEP_ENV = "lbStep"  # nix/runner.nix: the step attribute of a step derivation

err = Console(stderr=True, highlight=False)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "build",
        help="build a step, stage0 or the whole chain with a live progress view",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument(
        "target",
        nargs="?",
        metavar="TARGET",
        help="step attribute, stage0, live-bootstrap (the default), or an installable",
    )
    p.add_argument("--until", metavar="STEP", help="build the chain up to and including STEP")
    options.json_output(p, "summary as JSON on stdout")
    p.add_argument(
        "--keep-failed", action="store_true", help="keep the build directory of a failed step"
    )
    options.target_source(p)
    p.add_argument(
        "--offline",
        action="store_true",
        help="do not try to download: fail before building when a distfile is not in the store",
    )
    p.add_argument("-o", "--out-link", metavar="PATH", help="create this result symlink")
    options.live_bootstrap(p, default="the pinned input (steps numbered from steps/)")
    p.add_argument("-L", "--print-build-logs", action="store_true", help="echo every log line")
    p.add_argument(
        "--option",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="pass a Nix option through (repeatable)",
    )
    p.set_defaults(func=run)


# -- running -------------------------------------------------------------------------------------
def nix_build_args(inst: list[str], args: argparse.Namespace) -> list[str]:
    cmd = ["build", "-L", "--log-format", "internal-json", "--json", *inst]
    if args.keep_failed:
        cmd.append("--keep-failed")
    cmd += ["--out-link", args.out_link] if args.out_link else ["--no-link"]
    for name, value in args.option:
        cmd += ["--option", name, value]
    return cmd


def _prepare(args: argparse.Namespace) -> tuple[str, list[str], StepIndex, Plan]:
    """TARGET resolved, its installable, the chain's steps and what to build (before building:
    setuid options added to ``args.option``, missing distfiles reported or refused)."""
    steps = chain_steps(args.live_bootstrap)
    if (args.target or "").startswith("bridge"):
        steps += bridge_steps()  # the bridge runs after the chain: one numbering for both
    attrs = [a for a, _ in steps]
    target = resolve_target(args.target, args.until, steps)
    inst = installable_args(target, options.target_source_of(args))
    index = step_index(target, steps)
    err.print(display.text("evaluating ", " ".join(inst)), soft_wrap=True)
    plan = make_plan(inst, target, attrs)
    for drv in plan.closure.values():
        if STEP_ENV in drv.env:  # the runner names its step derivations in the environment
            index.alias(drv.name, drv.env[STEP_ENV])
    plan.to_build = _ordered(plan.to_build, index)
    # steps that set setuid bits need filter-syscalls = false: pass it, or stop before building
    needs_setuid = setuid.setuid_steps(plan.closure[d] for d in plan.to_build)
    if needs_setuid:
        more, note = setuid.options_for(needs_setuid, args.option, setuid.current_settings())
        args.option = [*args.option, *more]
        if note:
            err.print(f"[yellow]{escape(note)}[/]", soft_wrap=True)
    if plan.missing_distfiles:
        text, hint = missing_message(plan.missing_distfiles, attempted=False)
        if args.offline:
            raise MissingDistfiles(
                text + "\n(--offline: nothing was built)", exit_code=1, hint=hint
            )
        err.print(
            display.lines(f"{text}\nnix will try to download them", "yellow"),
            soft_wrap=True,
        )
    return target, inst, index, plan


def run(args: argparse.Namespace) -> int:
    target, inst, index, plan = _prepare(args)
    durations = Durations()
    before = dict(durations.seconds)
    log = BuildLog()
    clock = time.monotonic
    started = clock()
    view = LiveView(
        target,
        log,
        index,
        durations,
        plan.to_build,
        started,
        clock,
        fetches={d.path for d in plan.missing_distfiles},
    )
    initial_eta = eta(log, view.to_build, durations, started)
    if plan.to_build:
        err.print(
            display.text(
                f"{len(plan.to_build)} derivation(s) to build for ",
                target,
                f"; {initial_eta.text()}",
            ),
            soft_wrap=True,
        )
    else:
        err.print(display.text("nothing to build: ", target, " is in the store"), soft_wrap=True)
    watched = _watch(nixcli.nix_command(nix_build_args(inst, args), sandbox=True), log, view, args)
    end = clock()
    log.finish(end, interrupted=watched.interrupted)
    _save_durations(log, durations, end)
    if watched.interrupted:
        raise KeyboardInterrupt
    if log.builds:
        err.print(summary_table(log, index, before, end))
    outputs = _outputs(watched.stdout)
    rc = watched.returncode
    error = _failure(log, plan, index, target, rc, args) if rc != 0 else None
    if args.json:
        summary = _json(
            target, inst, rc, log, index, plan, before, initial_eta, outputs, end, error
        )
        print(json.dumps(summary, indent=1))
    elif rc == 0:
        for path in outputs:
            print(path)
    if error is not None:
        if args.json:
            error.json_printed = True  # type: ignore[attr-defined]  # the summary carries it
        raise error
    built = len([r for r in log.builds.values() if r.status == "built"])
    err.print(
        display.text(
            ("built ", "green"),
            (target, "green"),
            f": {built} derivation(s) in {fmt_seconds(end - started)}",
        ),
        soft_wrap=True,
    )
    return 0


def _watch(cmd: list[str], log: BuildLog, view: LiveView, args: argparse.Namespace) -> Watched:
    """The one loop (build/watch.py), shown live on a terminal, else line by line."""
    if err.is_terminal and not args.print_build_logs:
        live = LiveDisplay(view, err)
        live.live.start()
        try:
            return watch(cmd, log, live, view.clock)
        finally:
            live.live.stop()
    return watch(cmd, log, PlainReporter(view, err, echo=args.print_build_logs), view.clock)


def _save_durations(log: BuildLog, durations: Durations, end: float) -> None:
    for rec in log.builds.values():
        if rec.status == "built":
            durations.record(rec.name, rec.seconds(end))
    try:
        durations.save()
    except OSError as exc:
        err.print(display.text(("could not save build durations: ", "yellow"), (exc, "yellow")))


def _ordered(to_build: list[str], index: StepIndex) -> list[str]:
    def key(drv: str) -> tuple[int, str]:
        step = index.for_name(store_name(drv))
        return (step.index if step else -1, drv)

    return sorted(to_build, key=key)


def _outputs(stdout: str) -> list[str]:
    try:
        data = json.loads(stdout) if stdout.strip() else []
    except json.JSONDecodeError:
        return []
    return [p for item in data for p in item.get("outputs", {}).values()]


def _failure(
    log: BuildLog, plan: Plan, index: StepIndex, target: str, rc: int, args: argparse.Namespace
) -> OrchestratorError:
    failed = log.failures()
    fetches = [
        r
        for r in failed
        if plan.closure.get(r.drv_path, None) is not None
        and plan.closure[r.drv_path].builder == FETCHURL
    ]
    if fetches:
        still = nixcli.invalid_paths([p for d in plan.missing_distfiles for p in d.output_paths])
        missing = [d for d in plan.missing_distfiles if any(p in still for p in d.output_paths)]
        text, hint = missing_message(
            missing or [plan.closure[r.drv_path] for r in fetches], attempted=True
        )
        for r in fetches:
            if r.tail:
                text += f"\n{r.name}: {list(r.tail)[-1]}"
        return MissingDistfiles(text, exit_code=rc, hint=hint)
    if failed:
        rerun = f"python -m orchestrator build {target} --keep-failed"
        reports = [failure_report(r, index, rerun=rerun) for r in failed]
        reports = (
            pinreport.for_build(log, plan, index, args.live_bootstrap, kept=args.keep_failed)
            + reports
        )
        return BuildFailed("\n\n".join(reports), exit_code=rc)
    errors = [e for e in log.errors if e.strip()] or log.text[-30:]
    return BuildFailed(
        "nix build failed (exit {}):\n{}".format(rc, "\n".join(errors[-30:]) or "(no message)"),
        exit_code=rc,
    )


def _json(
    target: str,
    inst: list[str],
    rc: int,
    log: BuildLog,
    index: StepIndex,
    plan: Plan,
    before: dict[str, float],
    initial_eta: Any,
    outputs: list[str],
    end: float,
    error: OrchestratorError | None,
) -> dict[str, Any]:
    builds = []
    for rec in log.builds.values():
        step = index.for_name(rec.name)
        builds.append(
            {
                "drv": rec.drv_path,
                "name": rec.name,
                "step": step.attr if step else None,
                "step_index": step.index + 1 if step else None,
                "steps_total": step.total if step else None,
                "pass": step.pass_no if step else None,
                "status": rec.status,
                "seconds": round(rec.seconds(end), 3),
                "expected_seconds": before.get(rec.name),
                "exit_code": rec.exit_code,
                "error": rec.error,
                "log_lines": rec.lines,
                "log_tail": list(rec.tail)[-30:] if rec.status == "failed" else [],
                "kept_dir": rec.kept_dir,
            }
        )
    return {
        "target": target,
        "installable": " ".join(inst),
        "exit_code": rc,
        "to_build": [{"drv": d, "name": store_name(d)} for d in plan.to_build],
        "missing_distfiles": [
            {"name": d.name, "sha256": next(iter(d.outputs.values())).hash, "url": d.env.get("url")}
            for d in plan.missing_distfiles
        ],
        "eta_seconds": initial_eta.seconds,
        "eta_unknown": initial_eta.unknown,
        "builds": builds,
        "outputs": outputs,
        "error": error.message if error is not None else None,
        "hint": error.hint if error is not None else None,
    }
