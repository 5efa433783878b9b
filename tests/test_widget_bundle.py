"""The embeddable widget's committed bundle: the same bytes a fresh esbuild build makes from console/widget/src, at
most 50 KB gzipped with socket.io-client inside, and the demo page embeds the version the relay serves."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CONSOLE = Path(__file__).resolve().parent.parent / "console"
WIDGET = CONSOLE / "widget" / "dist" / "warmline.js"  # what handoff/app.py serves at /widget/<version>/warmline.js
WIDGET_VERSION = json.loads((CONSOLE / "package.json").read_text())["version"]
MAX_GZIP_BYTES = 50 * 1024


def test_bundle_is_built_from_the_sources(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (CONSOLE / "node_modules" / "esbuild").exists():
        reason = "node or console/node_modules/esbuild missing: run scripts/bootstrap.sh"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    fresh = tmp_path / "warmline.js"
    subprocess.run([node, str(CONSOLE / "widget" / "build.mjs"), str(fresh)], check=True, cwd=CONSOLE, timeout=120)
    assert fresh.read_bytes() == WIDGET.read_bytes(), (
        "console/widget/dist is stale: run npm run build:widget in console/"
    )


def test_bundle_size_and_version() -> None:
    bundle = WIDGET.read_bytes()
    zipped = len(gzip.compress(bundle, compresslevel=9))
    print(f"widget: {len(bundle)} bytes minified, {zipped} bytes gzipped (limit {MAX_GZIP_BYTES})")
    assert zipped <= MAX_GZIP_BYTES
    assert f"Warmline widget {WIDGET_VERSION} " in bundle.decode()[:200]
    assert b"innerHTML" not in bundle  # text goes in as text nodes only
    assert f'src="/widget/{WIDGET_VERSION}/warmline.js"' in (CONSOLE / "static" / "demo.html").read_text()
