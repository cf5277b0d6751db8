"""`make lab` really starts JupyterLab, and the course works in it from a real (headless) browser.

1. Over HTTP: JupyterLab answers on localhost and offers the python3 kernel.
2. In headless Chromium, driven by Playwright: notebook 00 opens, "Run All Cells" from the Run menu
   runs it to its last output in the kernel JupyterLab started, and an ipywidgets button sends its
   click to the kernel and shows the kernel's answer (the round trip the live-experiment widgets need).
3. Notebook 05 runs all cells; then its elbow explorer is used as a student would: pick another
   training-set size, press Run, and the figure in the widget changes. The screenshot is kept
   (tmp folder; README's picture docs/lab_rank_elbow.png was taken this way).

The browser test needs a Chromium. It looks for $CHROMIUM, then `chromium`, `chromium-browser`,
`google-chrome` on PATH. Without one it is skipped with a message, except in CI, where `.ci/run`
installs Debian's chromium and sets ADAPTERTUNE_REQUIRE_BROWSER=1 so a missing browser fails.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "smoke-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def make_lab(runtime_dir: Path, lab_dir: Path | None = None, **env):
    """Start JupyterLab through `make lab` (headless, fixed token); yield its base URL; stop it after."""
    port = _free_port()
    args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={TOKEN} --ServerApp.open_browser=False"
    cmd = ["make", "-s", "lab", f"LAB_ARGS={args}"] + ([f"LAB_DIR={lab_dir}"] if lab_dir else [])
    log = runtime_dir / "lab.log"  # a file, not a pipe: a pipe nobody reads would block a chatty server
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime_dir), **env},
                                start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, f"`make lab` exited early:\n{log.read_text()}"
            assert time.time() < deadline, "JupyterLab did not answer within 120 s"
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5).close()
                break
            except OSError:
                time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.slow
def test_make_lab_starts_jupyterlab_that_answers_on_localhost(tmp_path):
    with make_lab(tmp_path) as url:
        with urllib.request.urlopen(f"{url}/lab?token={TOKEN}", timeout=5) as r:
            assert "JupyterLab" in r.read().decode()
        with urllib.request.urlopen(f"{url}/api/kernelspecs?token={TOKEN}", timeout=5) as r:
            assert b"python3" in r.read()
        with urllib.request.urlopen(f"{url}/api/contents/notebooks?token={TOKEN}", timeout=5) as r:
            assert b"00_start_here.ipynb" in r.read()  # it opens the repository, notebooks included


def _chromium() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    message = ("no Chromium found for the browser test: install one (Debian/Ubuntu: `apt install chromium`) "
               "or set CHROMIUM=/path/to/chrome")
    if os.environ.get("ADAPTERTUNE_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


WIDGET_CELL = '''\
import ipywidgets as widgets

answer = widgets.Output()
button = widgets.Button(description="run experiment")
button.on_click(lambda _: answer.append_stdout("the kernel received the click\\n"))
widgets.VBox([button, answer])
'''


@pytest.mark.slow
def test_notebook_and_widgets_work_in_jupyterlab_in_a_headless_browser(tmp_path, course_runs):
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = _chromium()
    lab_dir = tmp_path / "lab"  # copies, so that JupyterLab's autosave never touches the repository
    lab_dir.mkdir()
    shutil.copy(ROOT / "notebooks" / "00_start_here.ipynb", lab_dir)
    shutil.copy(ROOT / "notebooks" / "05_rank_elbow.ipynb", lab_dir)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(WIDGET_CELL)],
                                            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}),
                   lab_dir / "widgets.ipynb")

    # JupyterLab renders only the cells in view (windowing); the test reads outputs from the page, so it turns that off
    tracker = tmp_path / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    with make_lab(tmp_path, lab_dir, ADAPTERTUNE_FAST="1", ADAPTERTUNE_RUNS=str(course_runs),
                  JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings")) as url, \
            playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-quic"])  # no calls home: this machine has no internet
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            def open_and_run_all(name: str) -> None:
                # a workspace of its own, so that no notebook opened before is restored beside it
                page.goto(f"{url}/lab/workspaces/{Path(name).stem}/tree/{name}?token={TOKEN}")
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
                # the status bar shows the kernel JupyterLab started for the notebook once it is ready
                page.wait_for_selector(".jp-StatusBar-TextItem:has-text('| Idle')", timeout=60_000)
                page.click("li.lm-MenuBar-item:has-text('Run')")
                page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

            open_and_run_all("00_start_here.ipynb")
            page.wait_for_selector(".jp-OutputArea-output:has-text('held-out accuracy')", timeout=300_000)
            outputs = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
            assert "All set." in outputs and "device:" in outputs
            assert "Traceback" not in outputs, outputs

            open_and_run_all("widgets.ipynb")
            page.get_by_role("button", name="run experiment").click(timeout=60_000)  # rendered by the widget frontend
            page.wait_for_selector(".jp-OutputArea-output:has-text('the kernel received the click')", timeout=60_000)

            open_and_run_all("05_rank_elbow.ipynb")
            run = page.locator(".jp-OutputArea-output button.widget-button", has_text="Run")
            run.wait_for(timeout=300_000)  # the explorer, in the last cell: everything above it has run
            outputs = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
            assert "of the gain from the smallest to the largest rank" in outputs and "Traceback" not in outputs, outputs
            figure = page.locator(".widget-output img")  # the explorer's Output widget holds its figure
            size = page.locator(".widget-dropdown", has_text="train images").locator("select")
            size.select_option("250")  # a quarter of the images at the base epochs: trained here (05 ran them at 4x the epochs)
            run.click()
            page.wait_for_selector("text=done: 4 runs", timeout=120_000)  # FAST's four ranks, one seed
            first = figure.get_attribute("src")
            size.select_option("1000")
            run.click()
            page.wait_for_function("src => [...document.querySelectorAll('.jp-OutputArea-output img')]"
                                   ".every(img => img.src !== src)", arg=first, timeout=120_000)
            outputs = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
            assert "Traceback" not in outputs and "Error" not in outputs, outputs
            figure.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "rank_elbow.png"))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)  # kept in pytest's tmp folder
            raise
        finally:
            browser.close()
