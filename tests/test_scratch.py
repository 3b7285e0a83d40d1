"""Scratch folders: a process killed outright leaves its folder, the next scratch folder reclaims it, and nothing
that lives or that is not a scratch folder is touched."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from audiostyle.sweep._scratch import MARKER, reclaim, scratch

HOLD = textwrap.dedent("""
    import sys, time
    from audiostyle.sweep._scratch import scratch
    with scratch(sys.argv[2], sys.argv[1]) as folder:
        (folder / "checkpoint.pt").write_bytes(b"x" * 4096)
        print(folder, flush=True)
        time.sleep(600)
""")


def hold(root: Path, name: str) -> tuple[subprocess.Popen, Path]:
    """A process that holds scratch folder ``name`` under ``root`` until it is killed; it and the folder."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root), name], stdout=subprocess.PIPE, text=True)
    return proc, Path(proc.stdout.readline().strip())


def test_a_killed_owners_folder_is_reclaimed_and_a_living_owners_is_kept(tmp_path: Path) -> None:
    user = tmp_path / "audiostyle-demo"  # a user's data folder with the same prefix, not a scratch folder
    user.mkdir()
    (user / "piano.wav").write_bytes(b"RIFF")
    killed, killed_folder = hold(tmp_path, "trial_00001")
    living, living_folder = hold(tmp_path, "trial_00002")
    try:
        killed.send_signal(signal.SIGKILL)  # no finally runs: the folder stays behind
        killed.wait()
        assert (killed_folder / "checkpoint.pt").is_file() and (killed_folder / MARKER).is_file()

        with scratch("trial_00003", tmp_path) as mine:
            assert not killed_folder.exists()
            assert (living_folder / "checkpoint.pt").is_file()
            assert (user / "piano.wav").is_file()
            assert (mine / MARKER).is_file()
            assert reclaim(tmp_path) == []  # its own folder is locked while the block runs
        assert not mine.exists()
    finally:
        living.kill()
        living.wait()
    assert reclaim(tmp_path) == [living_folder]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audiostyle-demo"]
