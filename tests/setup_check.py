"""Test set-up that `make test` runs first: checks what the slow tiers need and installs Chromium.

Java (17+) runs the Spark tiers; it must come with the machine. Debian's Chromium runs the browser
tests and is installed here when missing (tests/setup/ensure_chromium.sh).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path


def check_java() -> None:
    java = shutil.which("java")
    if java is None:
        sys.exit("setup: Java is missing: the Spark tests need Java 17 or newer (apt-get install openjdk-17-jre-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < 17:
        sys.exit(f"setup: Java 17 or newer is needed for Spark 4, found: {out.splitlines()[0] if out else 'unknown'}")
    print(f"setup: java ok ({out.splitlines()[0]})")


def ensure_chromium() -> None:
    script = Path(__file__).parent / "setup" / "ensure_chromium.sh"
    if subprocess.run(["bash", str(script)]).returncode != 0:
        sys.exit("setup: Chromium for the browser tests could not be installed (see above)")


if __name__ == "__main__":
    check_java()
    ensure_chromium()
