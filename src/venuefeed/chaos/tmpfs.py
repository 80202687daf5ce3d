"""A small filesystem that can be filled: the disk-full scenario's disk.

As root a tmpfs of a few MiB is mounted on a fresh folder, so "disk full" is a
real ENOSPC from the kernel, not a simulation inside our own code; it is
unmounted in ``finally`` whatever happens. Without root the scenario cannot
run honestly and is skipped with that reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SmallDisk", "can_mount", "small_disk"]


def can_mount() -> str | None:
    """None when a tmpfs can be mounted here, else the reason why not."""
    if os.geteuid() != 0:
        return "needs root to mount a small tmpfs"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "mount/umount not installed"
    return None


class SmallDisk:
    """A mounted tmpfs and a filler file that takes (and gives back) its free space."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler.bin"

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def fill(self) -> int:
        """Write until the disk refuses (ENOSPC), to the last 512 bytes; returns bytes taken."""
        written = 0
        size = 1024 * 1024
        with self.filler.open("ab", buffering=0) as handle:
            while size >= 512:
                try:
                    written += handle.write(b"\0" * size) or 0
                except OSError:
                    size //= 2
        return written

    def free(self) -> None:
        """Give the space back (the operator cleaned up)."""
        self.filler.unlink(missing_ok=True)


@contextlib.contextmanager
def small_disk(size_mib: int) -> Iterator[SmallDisk]:
    """Mount a ``size_mib`` MiB tmpfs on a new folder; unmount and remove it afterwards."""
    root = Path(tempfile.mkdtemp(prefix="venuefeed-chaos-disk-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(root)],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield SmallDisk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            root.rmdir()
