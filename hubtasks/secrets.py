"""sops-encrypted values files: recognise them and decrypt them into a private temp folder.

Decrypted files live only as long as one `with decrypted_values(...)` block, in a folder only
the current user can read (0700, files 0600 from the moment they exist).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .model import HubtasksError

SECRET_MARK = "secret"
SOPS_TIMEOUT = 120.0
MESSAGE_LINES = 20

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def is_secret_path(path: Path | str) -> bool:
    """True when the file name says it holds secrets (e.g. `enc-prod.secret.values.yaml`)."""
    return SECRET_MARK in Path(path).name.lower()


def _load(path: Path) -> Any:
    """A YAML or JSON document, or None when it cannot be read or parsed."""
    try:
        data = path.read_bytes()
        if b"sops" not in data:  # cheap exit for the many plain values files
            return None
        text = data.decode("utf-8")
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_Loader)  # a safe loader (C when available)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return None


def is_sops_encrypted(path: Path) -> bool:
    """True when the file is YAML/JSON with sops metadata (a top-level `sops` with a `mac`)."""
    doc = _load(Path(path))
    meta = doc.get("sops") if isinstance(doc, dict) else None
    return isinstance(meta, dict) and "mac" in meta and "version" in meta


def _check_encrypted(path: Path) -> None:
    """Refuse a secret file that is missing or still in plain text."""
    if not path.is_file():
        raise HubtasksError(f"{path}: secret values file not found")
    if not is_sops_encrypted(path):
        raise HubtasksError(
            f"{path}: the name says it holds secrets but it is not sops-encrypted; "
            f"encrypt it with `sops --encrypt --in-place {path}` before committing it")


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-MESSAGE_LINES:])


def _decrypt(path: Path, sops: Path, env: Mapping[str, str]) -> bytes:
    """The plaintext of a sops file; errors carry sops' stderr, never its stdout."""
    argv = [str(sops), "--decrypt", str(path)]
    try:
        done = subprocess.run(argv, capture_output=True, env=dict(env), timeout=SOPS_TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError as err:
        raise HubtasksError(f"{path}: sops not found at {sops}; run `invoke install-tools` "
                            "or put sops on PATH") from err
    except (OSError, subprocess.TimeoutExpired) as err:
        raise HubtasksError(f"{path}: running sops failed: {err}") from err
    if done.returncode != 0:
        message = _tail(done.stderr.decode("utf-8", "replace"))
        raise HubtasksError(f"{path}: `sops --decrypt` failed (exit {done.returncode}); check "
                            f"that your key can decrypt it (e.g. SOPS_AGE_KEY_FILE):\n{message}")
    return done.stdout


def _write_private(target: Path, data: bytes) -> None:
    """Create `target` as 0600 (never readable by others, even briefly) and write `data`."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _needs_decrypting(path: Path) -> bool:
    """Secret-named files must be encrypted; other encrypted files are decrypted too."""
    if is_secret_path(path):
        _check_encrypted(path)
        return True
    return is_sops_encrypted(path)


@contextlib.contextmanager
def decrypted_values(files: Sequence[Path], *, sops: Path,
                     env: Mapping[str, str]) -> Iterator[tuple[Path, ...]]:
    """The files to pass to helm, in order: encrypted ones swapped for decrypted copies.

    The copies keep their file name (so helm and sops see the same extension) and are
    removed on exit, whatever ends the block (error, KeyboardInterrupt).
    """
    paths = [Path(f) for f in files]
    chosen = [_needs_decrypting(p) for p in paths]
    if not any(chosen):
        yield tuple(paths)
        return
    private = Path(tempfile.mkdtemp(prefix="hubtasks-values-"))
    try:
        os.chmod(private, 0o700)  # mkdtemp already does; state it rather than rely on it
        yield tuple(_decrypt_into(private, i, p, sops, env) if secret else p
                    for i, (p, secret) in enumerate(zip(paths, chosen, strict=True)))
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _decrypt_into(private: Path, index: int, path: Path, sops: Path,
                  env: Mapping[str, str]) -> Path:
    # The index keeps two files of the same name (from different folders) apart.
    target = private / f"{index:02d}-{path.name}"
    _write_private(target, _decrypt(path, sops, env))
    return target
