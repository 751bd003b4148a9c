"""Environments for running the CLI as a new user would: nothing configured."""

from __future__ import annotations

import os
from pathlib import Path


def offline_env(data_dir: Path, tmp_path: Path) -> dict[str, str]:
    """This process's environment without TiDB, AWS or Bedrock settings (a fresh machine)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TIDB_", "AWS_", "BEDROCK_")) or k == "TIDB_SERVER_BIN"
    }
    env.update(
        LTB_DATA_DIR=str(data_dir),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    return env
