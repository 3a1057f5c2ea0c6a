"""Every intervention test starts from the same torch RNG state, on one thread."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # Tiny networks: one thread avoids oversubscribing shared cores (restored afterwards).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
