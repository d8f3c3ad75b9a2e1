"""End-to-end: webserver + daemon on loopback, a partitioned run launched through GraphQL, and the UI
rendered in headless Chromium (Debian's ``chromium``; ``.ci/install_browser.sh`` installs it in CI).

Artifacts (screenshots, DOM text, server logs) go to ``test-artifacts/e2e/`` at the repository root.
Every process the test starts runs in its own process group and is stopped (TERM, then KILL) at the end;
processes started on its behalf outside those groups (code servers, run workers) are found by their
temporary DAGSTER_HOME, given 15 s to exit, then killed and listed in ``force_killed.txt``; the test fails
if any process using its temporary instance is still alive afterwards.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import write_tiny_scan

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
BIN = Path(os.environ.get("VIRTUAL_ENV") or REPO / ".venv") / "bin"
SCAN_ID = "e2e-scan"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1600,1000",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def _dagster_bin(name: str) -> str:
    candidate = BIN / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """TERM the process group, wait, then KILL what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def _pids_using(marker: str) -> list[int]:
    """Processes whose environment contains ``marker`` (our temporary DAGSTER_HOME)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _describe(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        ppid = next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("PPid:"))
    except (OSError, StopIteration):
        return f"{pid} (gone)"
    return f"{pid} (parent {ppid}): {cmdline[:200]}"


def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _chromium(chromium: str, profile: Path, action: list[str], url: str, timeout: float = 60) -> str:
    """One headless Chromium call (own process group, fresh profile); returns stdout."""
    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", *action, url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        _stop_group(proc, grace=2)
    return out


def _visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_ui_shows_the_assets_after_a_partitioned_run(tmp_path):
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is not installed (CI must run .ci/install_browser.sh)")
        pytest.skip("chromium is not installed: run .ci/install_browser.sh (apt-get install chromium)")

    import dagster as dg
    from dagster_graphql import DagsterGraphQLClient

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    home.mkdir()
    # the instance config `make ui` uses: queued runs (so the daemon must dequeue), pool limits
    shutil.copyfile(REPO / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")
    write_tiny_scan(data / "incoming", SCAN_ID, seed=7)
    env = {**os.environ, "DAGSTER_HOME": str(home), "NMC_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    env.pop("NMC_EXECUTOR", None)
    port = _free_port()

    # create the instance storage and register the scan before the servers start: a webserver and a
    # daemon migrating a fresh SQLite instance at the same moment race ("table alembic_version exists")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("scan", [SCAN_ID])

    logs = {name: open(ARTIFACTS / f"{name}.log", "w") for name in ("webserver", "daemon")}
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(
            [_dagster_bin("dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=env, stdout=logs["webserver"], stderr=subprocess.STDOUT, start_new_session=True,
        ))
        procs.append(subprocess.Popen(
            [_dagster_bin("dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=REPO, env=env, stdout=logs["daemon"], stderr=subprocess.STDOUT, start_new_session=True,
        ))

        deadline = time.monotonic() + 120
        while True:
            try:
                info = json.loads(_get(f"http://127.0.0.1:{port}/server_info"))
                break
            except OSError:
                assert all(p.poll() is None for p in procs), "webserver or daemon exited; see test-artifacts/e2e/"
                assert time.monotonic() < deadline, "webserver did not answer /server_info within 120 s"
                time.sleep(0.5)
        assert info["dagster_version"] == dg.__version__

        # launch raw_tomogram for the registered scan through GraphQL
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_id = client.submit_job_execution(
            "__ASSET_JOB", asset_selection=["raw_tomogram"], tags={"dagster/partition": SCAN_ID},
            repository_location_name="nmc_assets",
        )
        deadline = time.monotonic() + 90
        while (status := client.get_run_status(run_id).value) not in ("SUCCESS", "FAILURE", "CANCELED"):
            assert time.monotonic() < deadline, f"run {run_id} still {status} after 90 s"
            time.sleep(0.5)
        assert status == "SUCCESS", f"run {run_id} ended {status}; see test-artifacts/e2e/daemon.log"
        assert (data / "warehouse" / "tomograms" / f"{SCAN_ID}.zarr").is_dir()

        # the first-visit newsletter dialog (shown on 127.0.0.1) would cover the screenshots
        assert _graphql(port, "mutation { setNuxSeen }").get("data", {}).get("setNuxSeen") is True

        pages = {
            "asset-graph": f"http://127.0.0.1:{port}/locations/__repository__@nmc_assets/asset-groups/segmentation",
            "asset-raw_tomogram": f"http://127.0.0.1:{port}/assets/raw_tomogram",
        }
        texts = {}
        for name, url in pages.items():
            texts[name] = _visible_text(_chromium(chromium, tmp_path / f"profile-{name}-dom", ["--dump-dom"], url))
            (ARTIFACTS / f"{name}.txt").write_text(texts[name])
            _chromium(chromium, tmp_path / f"profile-{name}-png", [f"--screenshot={ARTIFACTS / f'{name}.png'}"], url)
            assert (ARTIFACTS / f"{name}.png").stat().st_size > 20_000, f"{name}: empty screenshot"

        # the asset graph of the segmentation group shows its assets and their neighbours
        from nmc_assets.definitions import defs as load_defs

        graph = load_defs().resolve_asset_graph()
        segmentation = sorted(k.to_user_string() for k in graph.get_all_asset_keys()
                              if graph.get(k).group_name == "segmentation")
        assert segmentation, "no segmentation assets in the code location"
        for name in [*segmentation, "raw_tomogram"]:
            assert name in texts["asset-graph"], f"{name} not rendered in the asset graph"
        # the asset page shows the asset, its latest partition and where it was written
        page = texts["asset-raw_tomogram"]
        assert "raw_tomogram" in page and SCAN_ID in page
        assert f"tomograms/{SCAN_ID}.zarr" in page
    finally:
        for proc in procs:
            _stop_group(proc)
        for log in logs.values():
            log.close()
        deadline = time.monotonic() + 15  # a run worker's forkserver exits once its parent is gone
        while (leftovers := _pids_using(str(home))) and time.monotonic() < deadline:
            time.sleep(0.5)
        # processes started on our behalf outside the groups (code servers, run workers): end them too
        (ARTIFACTS / "force_killed.txt").write_text("\n".join(_describe(pid) for pid in leftovers) + "\n")
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        remaining = [_describe(pid) for pid in _pids_using(str(home))]
    assert remaining == [], f"processes still using the test instance after teardown: {remaining}"
