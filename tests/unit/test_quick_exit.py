"""The quick exit keeps what a normal exit guarantees: exit codes, atexit handlers, flushed files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import atexit, sys
from pathlib import Path
from olivine.quick_exit import prepare_exit

out = Path(sys.argv[1])
# A buffered file held by a module global: flushed when the module is cleared.
kept = open(out / "global.txt", "w")
kept.write("from a global")
atexit.register(lambda: (out / "atexit.txt").write_text("ran"))
prepare_exit()
sys.exit(7)
"""


def test_prepare_exit_keeps_exit_code_atexit_and_buffered_files(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], check=False)
    assert done.returncode == 7
    assert (tmp_path / "global.txt").read_text() == "from a global"
    assert (tmp_path / "atexit.txt").read_text() == "ran"


def test_olivine_command_keeps_the_exit_code_of_a_user_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "olivine", "run", "--config", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "missing.json" in done.stderr
