"""The notebooks in notebooks/ run headless, top to bottom, without an error (nbclient), so they never rot.

All notebooks share one kernel (the venv's own ``python3`` kernel from ipykernel: no registration, no network),
started once: TensorFlow is imported once instead of seven times. Each notebook starts with ``%reset -f`` (added
here, not in the file), so it cannot lean on another's variables. A cell that raises fails the test with the
notebook, the cell and the traceback. The wall time and the kernel's CPU time of each notebook are printed and
written to ``test-artifacts/notebooks.json`` (on a busy machine the CPU time is the better guide to the idle time).

They are committed without outputs (checked here too): the repository holds the lessons, not a run of them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
ARTIFACTS = REPO / "test-artifacts"
CELL_TIMEOUT_S = 600


def test_the_training_lessons_have_notebooks():
    names = [path.stem for path in NOTEBOOKS]
    for lesson in ("fine-tuning", "augmentation", "overfitting", "cross-validation", "pruning", "quantization",
                   "export"):
        assert any(name.endswith(lesson) for name in names), f"no notebook for {lesson}: {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.fixture(scope="module")
def kernel():
    """One started kernel (the venv's python3) in notebooks/, shut down at the end."""
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(REPO / "notebooks"))
    client = manager.blocking_client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    yield manager, client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


@pytest.mark.tensorflow  # the kernel (a child process) imports TensorFlow
@pytest.mark.slow
def test_every_notebook_runs(kernel):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    import psutil

    manager, client = kernel
    process = psutil.Process(manager.provisioner.process.pid)
    cpu = lambda: sum(process.cpu_times()[:4])  # noqa: E731 — user + system, with the kernel's children
    seconds, cpu_seconds, failures = {}, {}, []
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        notebook.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))
        runner = NotebookClient(notebook, km=manager, timeout=CELL_TIMEOUT_S, allow_errors=False)
        runner.kc = client
        started, used = time.perf_counter(), cpu()
        try:
            runner.execute()
        except CellExecutionError as error:
            failures.append(f"{path.name}: {error}")
        seconds[path.name] = round(time.perf_counter() - started, 1)
        cpu_seconds[path.name] = round(cpu() - used, 1)
        print(f"{path.name}: {seconds[path.name]} s (kernel CPU {cpu_seconds[path.name]} s)", flush=True)
    ARTIFACTS.mkdir(exist_ok=True)
    report = {"seconds": seconds, "cpu_seconds": cpu_seconds, "total": round(sum(seconds.values()), 1),
              "total_cpu": round(sum(cpu_seconds.values()), 1), "load_average": psutil.getloadavg()}
    (ARTIFACTS / "notebooks.json").write_text(json.dumps(report, indent=2))
    assert not failures, "\n\n".join(failures)
