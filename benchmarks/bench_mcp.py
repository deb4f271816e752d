"""MCP server latency: tool calls in memory and over HTTP, stdio start-up.

Prints p50 and p95 of tool-call latency through the in-memory fastmcp client
and over streamable HTTP (a ``triallens mcp --transport http`` process on a
free loopback port), and the time from launching ``triallens mcp`` over stdio
to the first tool list. Works in a throw-away data directory.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_mcp.py [--calls 200]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000


async def _time_calls(
    call: Callable[[], Awaitable[Any]], count: int
) -> tuple[float, float]:
    for _ in range(min(10, count)):
        await call()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return _percentiles(samples)


async def _tool_latency(client: Any, study_uid: str, count: int) -> dict[str, Any]:
    rows = {}
    rows["list_worklist"] = await _time_calls(
        lambda: client.call_tool("list_worklist", {"trial_id": "TL-MCP-001"}), count
    )
    rows["get_study_triage"] = await _time_calls(
        lambda: client.call_tool("get_study_triage", {"study_uid": study_uid}), count
    )
    rows["get_key_image"] = await _time_calls(
        lambda: client.call_tool(
            "get_key_image", {"study_uid": study_uid, "lesion_id": "T01"}
        ),
        count,
    )
    return rows


async def _stdio_startup(user: str, runs: int) -> list[float]:
    from fastmcp import Client
    from fastmcp.client.transports import StdioTransport

    times = []
    for _ in range(runs):
        transport = StdioTransport(
            command=sys.executable,
            args=["-c", "from triallens.cli import main; main()", "mcp"],
            env=dict(os.environ, TRIALLENS_MCP_USER=user, FASTMCP_LOG_LEVEL="WARNING"),
            keep_alive=False,
        )
        start = time.perf_counter()
        async with Client(transport) as client:
            await client.list_tools()
            times.append(time.perf_counter() - start)
    return times


async def main(calls: int, stdio_runs: int) -> None:
    from fastmcp import Client

    from mcp_server import build_server
    from tests._mcp_fixtures import (
        build_world,
        free_port,
        start_http_server,
        stop_process,
    )
    from triallens.settings import get_settings, reset_settings

    workdir = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    data_dir = workdir / "data"
    os.environ.update(
        {
            "HOME": str(workdir),
            "TRIALLENS_DATA_DIR": str(data_dir),
            "HF_HUB_OFFLINE": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )
    reset_settings()
    world = build_world(data_dir)
    study = world.followup_uid

    print(f"MCP tool-call latency, {calls} calls each (ms)")
    print(f"{'transport':<10} {'tool':<18} {'p50':>8} {'p95':>8}")
    async with Client(build_server(get_settings(), user="rita")) as client:
        for tool, (p50, p95) in (await _tool_latency(client, study, calls)).items():
            print(f"{'memory':<10} {tool:<18} {p50:>8.2f} {p95:>8.2f}")

    port = free_port()
    process = start_http_server(data_dir, port)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        async with Client(url, auth=world.tokens["rita"]) as client:
            for tool, (p50, p95) in (await _tool_latency(client, study, calls)).items():
                print(f"{'http':<10} {tool:<18} {p50:>8.2f} {p95:>8.2f}")
    finally:
        stop_process(process)

    imports = []
    for _ in range(stdio_runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mcp_server"], check=True)
        imports.append(time.perf_counter() - start)
    print(
        f"\npython -c 'import mcp_server' ({stdio_runs} runs): "
        f"median {statistics.median(imports):.2f} s"
    )
    startup = await _stdio_startup("rita", stdio_runs)
    print(
        f"stdio start-up to first tool list ({stdio_runs} runs): "
        f"median {statistics.median(startup):.2f} s, "
        f"min {min(startup):.2f} s, max {max(startup):.2f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--stdio-runs", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.calls, options.stdio_runs))
