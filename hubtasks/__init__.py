"""hubtasks: plan and deploy many JupyterHubs across many Kubernetes clusters."""

from __future__ import annotations

__version__ = "0.1.0"
