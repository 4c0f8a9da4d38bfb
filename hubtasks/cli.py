"""The `hubtasks` console script: invoke's Program over the same task collection.

`plan` with plain flags takes a fast path that skips importing invoke (hubtasks.fastcli).
"""

from __future__ import annotations

import sys

from hubtasks import __version__


def main() -> None:
    """Entry point of the console script; Ctrl-C before a run starts is not a traceback."""
    try:
        from hubtasks.fastcli import fast_plan

        code = fast_plan(sys.argv[1:])
        if code is not None:
            sys.exit(code)
        from invoke import Program

        from hubtasks.tasks import ns

        Program(namespace=ns, version=__version__, name="hubtasks", binary="hubtasks").run()
    except KeyboardInterrupt:
        print("hubtasks: interrupted", file=sys.stderr)
        sys.exit(130)
