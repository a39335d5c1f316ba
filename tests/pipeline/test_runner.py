"""The pipeline's kernels: private IPC sockets, cleaned up after the run."""

from __future__ import annotations

from shrek.pipeline.runner import LocalKernelManager


def test_kernel_socket_folder_is_removed_at_shutdown():
    """Regression (review of issue 2): every kernel left an empty shrek-kernel-* folder."""
    manager = LocalKernelManager(kernel_name="python3")
    folder = manager.socket_dir
    manager.start_kernel()
    client = manager.client()
    try:
        client.start_channels()
        client.wait_for_ready(timeout=120)
        assert any(path.name.startswith("kernel-") for path in folder.iterdir())  # IPC sockets
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

    assert not folder.exists()
