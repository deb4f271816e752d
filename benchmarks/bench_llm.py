"""Overhead TrialLens adds per LLM call, against a bare openai-client call.

Starts the vLLM test server (tiny model, ``.vllm-venv``) unless ``--base-url``
names a running OpenAI-compatible server, then times, interleaved and on the
same narrative request:

- ``bare``: ``openai.OpenAI().chat.completions.create`` with the same
  messages and JSON schema;
- ``client``: ``LlmClient.structured`` (retry wrapper, error mapping, pydantic
  validation);
- ``draft``: ``draft_narrative`` (prompt rendering, client, grounding check,
  template fallback);
- ``draft+trace``: the same with MLflow tracing to a local SQLite store
  (MLflow's default trace logging; ``--sync-traces`` writes each trace
  before the call returns, as the tests do).

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_llm.py [--calls 30]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_MODEL_CATALOG_URI": "",
}.items():
    os.environ[_key] = _value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--base-url", help="use this server instead of starting vLLM")
    parser.add_argument("--sync-traces", action="store_true")
    args = parser.parse_args()
    if args.sync_traces:
        os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"

    with tempfile.TemporaryDirectory(prefix="bench-llm-") as tmp:
        server = None
        base_url = args.base_url
        if base_url is None:
            from tests._llm_fixtures import VLLM_PYTHON, VllmServer

            if not VLLM_PYTHON.exists():
                sys.exit(".vllm-venv is missing: run scripts/vllm-env.sh first")
            started = time.perf_counter()
            server = VllmServer(Path(tmp) / "vllm").start()
            base_url = server.base_url
            print(f"vLLM ready in {time.perf_counter() - started:.1f} s at {base_url}")
        try:
            run(base_url, Path(tmp), args.calls, args.warmup)
        finally:
            if server is not None:
                server.stop()


def run(base_url: str, tmp: Path, calls: int, warmup: int) -> None:
    import openai

    from agent.llm import (
        LlmClient,
        NarrativeDraft,
        check_grounding,
        draft_narrative,
        findings_json,
        json_schema_format,
    )
    from prompts import load_prompt
    from tests._llm_fixtures import sample_result
    from triallens.settings import Settings

    result = sample_result()
    messages = load_prompt("triage-narrative").render(
        findings_json=findings_json(result)
    )
    plain = LlmClient(base_url, retries=0)
    model = plain.model
    settings = Settings(
        data_dir=tmp / "data",
        mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
        llm_base_url=base_url,
        llm_model=model,
        llm_retries=0,
    )
    traced = LlmClient.from_settings(settings, tracing=True)
    bare = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)
    schema = json_schema_format(NarrativeDraft)

    variants: dict[str, Callable[[], object]] = {
        "bare": lambda: bare.chat.completions.create(
            model=model,
            messages=messages,
            response_format=schema,
            temperature=0.0,
            max_tokens=400,
        ),
        "client": lambda: plain.structured(messages, NarrativeDraft, max_tokens=400),
        "draft": lambda: draft_narrative(result, plain),
        "draft+trace": lambda: draft_narrative(result, traced),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for index in range(warmup + calls):
        # Rotate the order so no variant always runs first.
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            call = variants[name]
            started = time.perf_counter()
            call()
            if index >= warmup:
                times[name].append(time.perf_counter() - started)

    import mlflow

    started = time.perf_counter()
    mlflow.flush_trace_async_logging(terminate=True)
    flush_ms = (time.perf_counter() - started) * 1000

    text = "Liver lesion L1 measured 23.5 mm; sum 35.5 mm, 22.4 % above baseline."
    started = time.perf_counter()
    for _ in range(1000):
        check_grounding(text, result)
    grounding_ms = (time.perf_counter() - started) * 1000 / 1000

    base = statistics.median(times["bare"]) * 1000
    print(f"\nmodel {model!r} at {base_url}; {calls} calls per variant, interleaved")
    print(f"{'variant':<12} {'p50 ms':>8} {'p90 ms':>8} {'overhead p50 ms':>16}")
    for name, values in times.items():
        ms = sorted(v * 1000 for v in values)
        p50 = statistics.median(ms)
        p90 = ms[int(0.9 * (len(ms) - 1))]
        overhead = "" if name == "bare" else f"{p50 - base:+.1f}"
        print(f"{name:<12} {p50:>8.1f} {p90:>8.1f} {overhead:>16}")
    print(f"check_grounding alone: {grounding_ms:.3f} ms per draft")
    print(
        f"trace writes still queued after the calls: {flush_ms:.0f} ms to flush "
        f"({flush_ms / (calls + warmup):.1f} ms per traced call, off the call path)"
    )


if __name__ == "__main__":
    main()
