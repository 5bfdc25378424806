"""Which board the unit runs on: a Raspberry Pi, an NVIDIA Jetson, or something else.

Read from the device tree's model string (`/proc/device-tree/model`: "Raspberry Pi 4 Model B Rev 1.4",
"NVIDIA Jetson Orin Nano Developer Kit") and, for a Jetson, JetPack's `/etc/nv_tegra_release`, the
same files `firmware/install.sh` reads. The GPIO backend and the camera advice follow from it.
"""
from __future__ import annotations

from pathlib import Path

PI, JETSON, OTHER = "pi", "jetson", "other"


def model(root: str | Path = "/") -> str:
    """The device tree's model string, "" where there is none (a PC, a container)."""
    try:
        return (Path(root) / "proc/device-tree/model").read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def detect(root: str | Path = "/") -> str:
    """PI, JETSON or OTHER."""
    m = model(root)
    if "Jetson" in m or (Path(root) / "etc/nv_tegra_release").exists():
        return JETSON
    if m.startswith("Raspberry Pi"):
        return PI
    return OTHER
