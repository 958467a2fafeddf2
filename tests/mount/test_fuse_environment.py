"""The machine can mount FUSE filesystems at all; every later mount test depends on this."""

from __future__ import annotations

import os
import shutil

from tests.conftest import unavailable


def test_fuse_device_helper_and_bindings_present() -> None:
    if not os.path.exists("/dev/fuse"):
        unavailable("/dev/fuse does not exist")
    if shutil.which("fusermount3") is None:
        unavailable("fusermount3 is not installed (apt-get install fuse3)")
    try:
        import pyfuse3
    except ImportError as error:
        unavailable(f"pyfuse3 cannot be imported: {error}")
    assert os.access("/dev/fuse", os.R_OK | os.W_OK)
    assert callable(pyfuse3.init)
