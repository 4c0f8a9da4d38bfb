"""A writable copy of the 2i2c fixture with age-encrypted stand-ins for its cloud-KMS secrets.

Each secret file is replaced, at its own path, by `{"standin": "<repo-relative path>"}`
encrypted for a test age key, so a decrypted document names the file it came from. The copy's
`hubtasks.yaml` is the one README.md documents for 2i2c repos.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hubtasks.secrets import is_secret_path, is_sops_encrypted

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Adopting hubtasks in a 2i2c repo"


def documented_settings() -> str:
    """The `hubtasks.yaml` of README.md's 2i2c section (the first yaml block after it)."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"```yaml\n(.*?)```", text[text.index(SECTION):], re.S)
    assert found, f"README.md: no yaml block under {SECTION!r}"
    return found.group(1)


def standin(rel: str) -> str:
    doc = {"standin": rel}
    return json.dumps(doc) if rel.endswith(".json") else f"standin: {rel}\n"


def _encrypt(path: Path, recipient: str, sops: Path) -> None:
    subprocess.run([str(sops), "--encrypt", "--age", recipient, "--in-place", path.name],
                   cwd=path.parent, check=True, capture_output=True, timeout=60)


def standin_copy(fixture: Path, dest: Path, *, sops: Path, recipient: str) -> Path:
    """Copy `fixture` to `dest` (symlinks kept), swap its secrets, add hubtasks.yaml."""
    shutil.copytree(fixture, dest, symlinks=True)
    for folder, _dirs, files in os.walk(dest):
        os.chmod(folder, 0o755)
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(0o644)
    secrets = [p for p in sorted(dest.rglob("*")) if p.is_file() and not p.is_symlink()
               and (is_secret_path(p) or is_sops_encrypted(p))]
    for path in secrets:
        path.write_text(standin(path.relative_to(dest).as_posix()), encoding="utf-8")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: _encrypt(p, recipient, sops), secrets))
    (dest / "hubtasks.yaml").write_text(documented_settings(), encoding="utf-8")
    return dest
