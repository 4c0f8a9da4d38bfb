"""invoke tasks for this repo: the same collection as the `hubtasks` console script."""

from hubtasks.tasks import ns

__all__ = ["ns"]
