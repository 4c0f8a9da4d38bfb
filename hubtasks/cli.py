"""The `hubtasks` console script: invoke's Program over the same task collection."""

from __future__ import annotations

import sys

from invoke import Program

from hubtasks import __version__
from hubtasks.tasks import ns

program = Program(namespace=ns, version=__version__, name="hubtasks", binary="hubtasks")


def main() -> None:
    """Entry point of the console script; Ctrl-C before a run starts is not a traceback."""
    try:
        program.run()
    except KeyboardInterrupt:
        print("hubtasks: interrupted", file=sys.stderr)
        sys.exit(130)
