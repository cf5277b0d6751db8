"""`adaptertune-lite doctor`: reports the setup, and fails when something the course needs is missing."""

import subprocess
import sys

from adaptertune_lite import backbones
from adaptertune_lite.course import cli


def test_doctor_reports_versions_device_and_assets(capsys):
    code = cli.main(["doctor"])
    out = capsys.readouterr().out
    for word in ("torch", "timm", "device", "FAST mode", "kit_vit_tiny", "mnist5k", "digits", "online"):
        assert word in out
    assert code == 0, out


def test_doctor_fails_when_the_kit_weights_are_missing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(backbones, "WEIGHTS_DIR", tmp_path)
    assert cli.main(["doctor"]) == 1
    assert "MISSING" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = subprocess.run([sys.executable, "-c", "import shutil,sys; print(shutil.which('adaptertune-lite', path=sys.prefix + '/bin'))"],
                         capture_output=True, text=True).stdout.strip()
    assert exe != "None"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "doctor" in out.stdout and "pretrain" in out.stdout
