"""examples/explore_particles.ipynb runs top to bottom (nbclient, a real kernel) on a small data root."""

import re
import time
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "explore_particles.ipynb"


def test_notebook_runs_on_a_small_data_root_within_a_minute(small_data_root, monkeypatch):
    monkeypatch.setenv("NMC_DATA_DIR", str(small_data_root.root))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell on any error
    seconds = time.perf_counter() - t0
    assert seconds <= 60, f"the notebook took {seconds:.0f} s"

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 3  # damage vs depth / size, the particle's slices, the drivers chart
    text = "\n".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "4 scans; columns:" in text and f"{small_data_root.catalog}" in text

    # the particle shown is the most damaged whole particle of the scans that have volumes
    measured = pd.concat(pd.read_parquet(small_data_root.particle_features(s)) for s in ("scan10", "scan50"))
    best = measured[~measured["touches_border"]].sort_values(["damage", "particle_id"], ascending=[False, True]).iloc[0]
    shown = re.search(r"scan (\S+), particle (\d+): damage ([0-9.]+)", text)
    assert shown is not None, text
    assert (shown[1], int(shown[2])) == (best["scan_id"], int(best["particle_id"]))
    assert float(shown[3]) == round(float(best["damage"]), 3) > 0.1
