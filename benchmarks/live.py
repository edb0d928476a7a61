r"""The live explorer's kernel round trip: milliseconds from a click in the widget to the kernel's answer drawn.

Run it from the repository root (about a minute; needs Chromium at ``FLOWLIB_CHROMIUM`` or /usr/bin/chromium)::

    python -m benchmarks --redraw

(the redraw benchmark runs it after the static explorers). :func:`jupyter_server` starts JupyterLab or Notebook 7 on
the loopback address with a random token in a temporary folder and stops it, with its kernels, on exit; the live
explorer's browser test (``tests/test_live_explorer.py``) starts its servers with it too.

The notebook builds chapter 5's live explorer over an untrained network of chapter 5's PSD size (the kernel's work
per click depends on the network's size, not its weights) and runs in a real kernel. Each click lands on a new
point of the canvas; the time is taken in the page from dispatching the click to the first redraw that shows the
kernel's answer for that point (``learned_source`` is ``"kernel"`` and nothing is pending): the widget's message to
the kernel, the kernel's five evaluations of the network (the jump, the two jumps through u, the tangent, and
:math:`X_{s,1}`), the reply and the redraw. The server and the browser share the machine's two cores.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import nbformat

#: The front ends a server can run: the app's module, its flags, and a notebook's path under the server's URL.
FRONT_ENDS = {
    "JupyterLab": ("jupyterlab", ["--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
                                  "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"], "lab/tree"),
    "Notebook 7": ("notebook", ["--JupyterNotebookApp.expose_app_in_browser=True"], "notebooks"),
}  # fmt: skip

#: Chapter 5's live explorer over an untrained PSD network of its size.
ROUND_TRIP_NOTEBOOK = """import flowlib
from flowlib import data, explorer

model = flowlib.build_model("psd", "eight_gaussians")  # chapter 5's PSD network, untrained
explorer.explore_mixture(data.mixture("eight_gaussians"), model, grid_size=3, time_grid=2, n_cloud=50, live=True)"""

#: In the page: wait for the live widget to show the kernel's answer (the condition every click waits for).
SETTLED = (
    "() => { const r = document.querySelector('.flowlib-explorer[data-flowlib-explorer=live]');"
    " if (!r || !r.dataset.state) return false; const s = JSON.parse(r.dataset.state);"
    " return s.learned_source === 'kernel' && !s.learned_pending; }"
)

#: In the page: click `clicks` new points of the canvas, timing each until the kernel's answer for it is drawn.
_CLICK_AND_TIME = """
async (clicks) => {
  const root = document.querySelector('.flowlib-explorer[data-flowlib-explorer=live]');
  const canvas = root.querySelector('canvas.fx-canvas');
  const times = [];
  for (let k = 0; k < clicks; k++) {
    const box = canvas.getBoundingClientRect(), before = root.dataset.state;
    const fx = 0.2 + 0.6 * ((0.37 * (k + 1)) % 1), fy = 0.2 + 0.6 * ((0.61 * (k + 1)) % 1);
    const start = performance.now();
    canvas.dispatchEvent(new MouseEvent('click', {clientX: box.left + fx * box.width,
                                                  clientY: box.top + fy * box.height, bubbles: true}));
    await new Promise((resolve) => {
      const check = () => {
        const s = JSON.parse(root.dataset.state);
        if (root.dataset.state !== before && s.learned_source === 'kernel' && !s.learned_pending) resolve();
        else requestAnimationFrame(check);
      };
      check();
    });
    times.push(performance.now() - start);
  }
  return times;
}
"""


class Server(NamedTuple):
    """A running Jupyter server: where it listens, its token and the front end's route to a notebook."""

    port: int
    token: str
    route: str

    def url(self, notebook: str) -> str:
        """The address that opens ``notebook`` (a path under the server's root) in the front end."""
        return f"http://127.0.0.1:{self.port}/{self.route}/{notebook}?token={self.token}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_notebook(path: Path, code: str) -> Path:
    """A one-cell notebook holding ``code`` with the python3 kernel, written to ``path``."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


@contextlib.contextmanager
def jupyter_server(root: Path, front_end: str = "JupyterLab", timeout: float = 90.0) -> Iterator[Server]:
    """Run a Jupyter server on 127.0.0.1 with a random token over the folder ``root``; stop it (and its kernels).

    Args:
        root: the folder the server serves (its configuration and runtime files go in subfolders of it).
        front_end: a key of :data:`FRONT_ENDS`.
        timeout: seconds to wait for the server to answer.

    Raises:
        ValueError: an unknown front end.
        RuntimeError: the server did not start (its last messages are included).
    """
    if front_end not in FRONT_ENDS:
        raise ValueError(f"front_end must be one of {sorted(FRONT_ENDS)}, got {front_end!r}")
    module, flags, route = FRONT_ENDS[front_end]
    port, token = _free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", module, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", *flags, "--allow-root"]  # fmt: skip
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / "config"), "JUPYTER_RUNTIME_DIR": str(root / "run")}
    log_path = root / "server.log"  # a file, not a pipe: a chatty server can never block on a full pipe
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=log,
                                  start_new_session=True)  # fmt: skip
        try:
            _wait_for(server, f"http://127.0.0.1:{port}/api/status?token={token}", timeout, front_end, log_path)
            yield Server(port, token, route)
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)


def _wait_for(server: subprocess.Popen, status_url: str, timeout: float, front_end: str, log_path: Path) -> None:
    """Poll the server's status until it answers; a clear error with its last messages if it dies or times out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(status_url, timeout=2)
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                server.wait()
                last = log_path.read_bytes().decode(errors="replace")[-2000:]
                raise RuntimeError(f"{front_end} did not start: {last}") from None
            time.sleep(0.5)


def run_all_cells(page: object) -> None:
    """In an open JupyterLab or Notebook 7 page: wait for the kernel, then run every cell of the notebook."""
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext", timeout=90_000)  # fmt: skip
    page.evaluate("async () => { await window.jupyterapp.shell.currentWidget.sessionContext.ready;"
                  " await window.jupyterapp.commands.execute('notebook:run-all-cells'); }")  # fmt: skip


def round_trip(browser: object, clicks: int = 30, front_end: str = "JupyterLab") -> list[float]:
    """Milliseconds from each of ``clicks`` clicks in the live explorer to the kernel's answer drawn."""
    with tempfile.TemporaryDirectory() as folder, jupyter_server(Path(folder), front_end) as server:
        write_notebook(Path(folder) / "live.ipynb", ROUND_TRIP_NOTEBOOK)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url("live.ipynb"))
        run_all_cells(page)
        page.wait_for_function(SETTLED, timeout=120_000)
        page.evaluate(_CLICK_AND_TIME, 3)  # warm up: the first answers also load the model's code paths
        times = page.evaluate(_CLICK_AND_TIME, clicks)
        page.close()
    return times


def summary(times: list[float]) -> dict:
    """How many, median, 95th percentile (nearest rank) and slowest of a list of milliseconds."""
    ordered = sorted(times)
    return {"count": len(ordered), "median_ms": statistics.median(ordered),
            "p95_ms": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "max_ms": ordered[-1]}  # fmt: skip
