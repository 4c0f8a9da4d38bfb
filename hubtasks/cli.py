"""The `hubtasks` console script: invoke's Program over the same task collection.

`plan` with plain flags takes a fast path that skips importing invoke (hubtasks.fastcli).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from hubtasks import __version__

# Optional positional arguments, which invoke's parser lacks (pyinvoke/invoke#159): a task's
# bare token after its required positionals is read as this flag (`values CLUSTER HUB`).
OPTIONAL_POSITIONAL = {"values": "hub"}


def with_optional_positionals(argv: Sequence[str], contexts: Iterable[Any]) -> list[str]:
    """`argv` with an optional positional rewritten as its flag: `values C H` -> `values C
    --hub=H`. Only for a task named before any other bare token; the rest is left to invoke."""
    out = list(argv)
    start = next((i for i, token in enumerate(out[1:], 1) if not token.startswith("-")), None)
    if start is None or out[start] not in OPTIONAL_POSITIONAL:
        return out
    context = next(c for c in contexts if c.name == out[start])
    wanted = {a.name for a in context.positional_args}
    index = start + 1
    while index < len(out) and out[index] != "--":
        token = out[index]
        if token.startswith("-"):
            name, eq, _ = token.partition("=")
            flag = context.flags.get(name)
            if flag is not None:
                wanted.discard(flag.name)
                index += 1 if eq or not flag.takes_value else 2
                continue
        elif wanted:
            wanted.pop()
        else:
            out[index] = f"--{OPTIONAL_POSITIONAL[out[start]]}={token}"
            break
        index += 1
    return out


def help_of_positional_task(argv: Sequence[str], contexts: Iterable[Any]) -> list[str]:
    """`values --help` -> `--help values`: invoke reads a `--help` after a task with a
    positional argument as that argument's value (`unknown cluster(s): --help`)."""
    out = list(argv)
    start = next((i for i, token in enumerate(out[1:], 1) if not token.startswith("-")), None)
    if start is None:
        return out
    context = next((c for c in contexts if out[start] in (c.name, *c.aliases)), None)
    rest = out[start + 1:]
    rest = rest[:rest.index("--")] if "--" in rest else rest
    if context is None or not context.positional_args or "--help" not in rest:
        return out
    return [*out[:start], "--help", out[start]]


def main() -> None:
    """Entry point of the console script; Ctrl-C before a run starts is not a traceback, nor
    is a reader that went away (`hubtasks ... | head`)."""
    try:
        try:
            _run(sys.argv)
        finally:
            sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
    except KeyboardInterrupt:
        interrupted()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush
        sys.exit(141)  # what a shell reports for a process SIGPIPE ended


def interrupted() -> NoReturn:
    """Exit 130 after Ctrl-C (or SIGTERM) reached the top: the task has unwound. Workers
    still busy (a second Ctrl-C: a Lease release, a helm being stopped) are not waited
    for; the reaper ends their programs, and the next run settles their records."""
    import contextlib
    import threading

    print("hubtasks: interrupted", file=sys.stderr)
    busy = [t for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not busy:
        sys.exit(130)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    _remove_own_private_folders()  # their `finally` won't run: decrypted copies go now
    os._exit(130)


def _remove_own_private_folders() -> None:
    import glob
    import shutil
    import tempfile

    from hubtasks.secrets import private_prefix

    for folder in glob.glob(os.path.join(tempfile.gettempdir(), f"{private_prefix()}*")):
        shutil.rmtree(folder, ignore_errors=True)


def _run(argv: list[str]) -> None:
    from hubtasks.fastcli import fast_plan

    code = fast_plan(argv[1:])
    if code is not None:
        sys.exit(code)
    from hubtasks.tasks import ns

    contexts = ns.to_contexts()
    argv = with_optional_positionals(help_of_positional_task(argv, contexts), contexts)
    _program()(namespace=ns, version=__version__, name="hubtasks", binary="hubtasks").run(argv)


def _program() -> type[Any]:
    """invoke's Program, reading the project config (`invoke.yaml`) of the current folder
    (the console script's tasks live in site-packages, where invoke would look otherwise),
    and giving a command line it can't parse (an unknown flag) exit 2, a user error."""
    from invoke import Exit, ParseError, Program

    class HubtasksProgram(Program):
        def parse_core(self, argv: list[str] | None) -> None:
            try:
                super().parse_core(argv)
            except ParseError as err:
                raise Exit(str(err), code=2) from None

        def parse_collection(self) -> None:
            super().parse_collection()
            self.config.set_project_location(os.getcwd())
            self.config.load_project()

        def parse_tasks(self) -> None:
            try:
                super().parse_tasks()
            except ParseError as err:
                raise Exit(str(err), code=2) from None

        def execute(self) -> None:
            try:
                super().execute()
            except KeyboardInterrupt:  # invoke's run() would make it exit 1
                interrupted()

    return HubtasksProgram
