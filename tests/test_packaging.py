"""Packaging: optional dependencies stay optional, the packages import, rlax is not used."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OPTIONAL = ("flax", "matplotlib", "torch", "tqdm", "orbax", "rlax", "envs", "agents")


def test_import_tdkit_imports_no_optional_dependency():
    code = (
        "import sys, tdkit\n"
        f"print(','.join(m for m in {OPTIONAL!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "", f"import tdkit imported: {out.stdout.strip()}"


def test_packages_import():
    import agents  # noqa: F401
    import envs  # noqa: F401
    import tdkit

    assert tdkit.__version__


def test_rlax_is_not_a_dependency():
    text = (ROOT / "setup.cfg").read_text()
    assert "rlax" not in text
    for path in list((ROOT / "tdkit").rglob("*.py")) + list((ROOT / "tests").rglob("*.py")):
        if path.name == "test_packaging.py":
            continue
        assert "import rlax" not in path.read_text(), path
