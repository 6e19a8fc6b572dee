"""Helpers of the example tests: run a bundled example as a user would, and read its metrics."""
import json
import os
import subprocess
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPOSITORY, "examples")


def run_example(name, *arguments, expect_failure=False):
    """Run examples/<name> in a subprocess without progress bars; assert its exit status."""
    command = [sys.executable, os.path.join(EXAMPLES, name), "--no-progress", *arguments]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY, timeout=300)
    if expect_failure:
        assert completed.returncode != 0, f"{name} {arguments} should fail:\n{completed.stdout}"
    else:
        assert completed.returncode == 0, f"{name} {arguments} failed:\n{completed.stdout}\n{completed.stderr}"
    return completed


def read_metrics(out):
    """Return the metrics.json that an example wrote into its --out folder."""
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as stream:
        return json.load(stream)
