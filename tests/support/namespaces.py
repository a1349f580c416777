"""Commands run with a private /run, for files that deployments put there.

systemd hands credentials to a service under /run/credentials/UNIT/, and the
Kubernetes manifests mount the Secret under /run/secrets/; a config that names
those paths is checked by running the exporter in its own mount namespace
with a fresh tmpfs on /run holding just those files. The machine's /run is
never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

# The console script pip installed beside the interpreter running the tests.
EXPORTER_SCRIPT = Path(sys.executable).parent / "smtp-tls-exporter"


def private_run_unavailable() -> str | None:
    """Why run_with_private_run() cannot work here (for require()), or None."""
    if os.geteuid() != 0:
        return "needs root (a private mount namespace)"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs unshare and mount (util-linux)"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"cannot create a mount namespace: {probe.stderr.decode().strip()}"
    return None


def run_with_private_run(
    files: Mapping[str, bytes], command: Sequence[str], *, mode: int = 0o600
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with /run holding only ``files`` (absolute paths under /run -> contents)."""
    with tempfile.TemporaryDirectory() as staging_name:
        staging = Path(staging_name)
        for path, content in files.items():
            relative = Path(path).relative_to("/run")
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_bytes(content)
            (staging / relative).chmod(mode)
        script = 'mount -t tmpfs -o mode=0755 tmpfs /run && cp -a "$0"/. /run/ && exec "$@"'
        return subprocess.run(
            ["unshare", "-m", "sh", "-c", script, str(staging), *command],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
