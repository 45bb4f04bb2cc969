"""The test suite's npm folders (tests/oidc, tests/mcp_clients, tests/conformance): each installed once
with ``npm ci`` from its lock file (``npm install`` where it has none) and reused while the installed
version of its main package is the locked one. A file lock serialises concurrent pytest processes; the
check is repeated under the lock."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

NPM = shutil.which("npm")
NPM_TIMEOUT = 300.0
INSTALL_HINT = "apt-get install -y nodejs npm"


@dataclass(frozen=True)
class NpmFolder:
    folder: Path
    package: str  # the dependency whose installed version says whether the folder is installed

    @property
    def node_modules(self) -> Path:
        return self.folder / "node_modules"

    def locked_version(self) -> str | None:
        try:
            data = json.loads((self.folder / "package-lock.json").read_text())
        except (OSError, ValueError):
            return None
        version = data.get("packages", {}).get(f"node_modules/{self.package}", {}).get("version")
        return version if isinstance(version, str) else None

    def installed(self) -> bool:
        try:
            version = json.loads((self.node_modules / self.package / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            return False
        locked = self.locked_version()
        return locked is None or version == locked

    def ensure(self, timeout: float = NPM_TIMEOUT) -> None:
        if self.installed():
            return
        if NPM is None:
            raise RuntimeError(f"npm not found; install it with: {INSTALL_HINT}")
        with (self.folder / ".npm-install.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.installed():
                    return
                verb = "ci" if (self.folder / "package-lock.json").exists() else "install"
                result = subprocess.run(
                    [NPM, verb, "--prefix", str(self.folder), "--no-audit", "--no-fund", "--loglevel=error"],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
                if result.returncode != 0 or not self.installed():
                    raise RuntimeError(
                        f"npm {verb} in {self.folder} failed ({result.returncode}):\n{result.stderr[-4000:]}"
                    )
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
