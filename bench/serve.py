"""Benchmark: `valuegate serve` against a bare FastAPI + xgboost app and a no-op app.

One run, same machine, same model, one after the other (never concurrently):

1. trains the German credit xgboost pipeline (the example's candidate) and writes a real
   bundle of it into a temporary registry (valuegate.bundle.save_bundle);
2. `noop`: a FastAPI app whose POST endpoint returns a constant (the server's ceiling);
3. `bare`: a FastAPI app whose POST endpoint reads a JSON list of the model's encoded
   features and calls `booster.inplace_predict` on a numpy row with nthread=1, as
   valuegate's server does (what the issue's floor measured: ~1,150-1,220 req/s on one
   uvicorn worker; with OpenMP's default of every core the bare app drops to ~150 req/s
   whenever anything else runs on this 2-core machine);
4. `valuegate`: `valuegate serve --model champion` on that bundle, with the prediction log on
   (SQLite WAL), request model validation, metrics and the numpy encoder, posting one raw
   record (20 named fields) per request;
5. load comes from a second process: `wrk` (Debian package) with a Lua script posting the
   body, `--latency` for p50/p99, concurrency `--connections` (default 16) on 2 threads.
   All three servers start first; after a 3 s warm-up each, the load alternates between
   them in `--rounds` rounds (default 4) of `--duration / --rounds` seconds per app
   (default 60 s per app in all), so anything else running on the machine weighs on
   every app alike.

Every server runs in its own process on one uvicorn worker (`--workers` to change) with
TCP_NODELAY on. Printed per app: requests/s over all its rounds, the median round's p50
and p99, non-2xx + socket errors, and the ratios valuegate/bare (target: throughput >=
0.8, p99 <= 1.5, zero errors). Results go to bench/results/serve.json.
Usage: python bench/serve.py [--duration 60] [--rounds 4] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BARE_APP = """
import json, sys
import numpy as np, xgboost as xgb
from fastapi import FastAPI, Request
from fastapi.responses import Response
booster = xgb.Booster(); booster.load_model(sys.argv[1])
booster.set_param({"nthread": 1})  # as valuegate's server does: OpenMP only slows one row
app = FastAPI()

@app.post("/predict")
async def predict(request: Request):
    x = np.asarray(await request.json(), dtype=np.float32).reshape(1, -1)
    score = float(booster.inplace_predict(x)[0])
    return Response(json.dumps({"score": score}).encode(), media_type="application/json")
"""

NOOP_APP = """
from fastapi import FastAPI, Request
from fastapi.responses import Response
app = FastAPI()

@app.post("/predict")
async def predict(request: Request):
    await request.body()
    return Response(b'{"score": 0.5}', media_type="application/json")
"""

RUNNER = """
import sys, importlib.util, uvicorn
from valuegate.serving.app import NoDelayH11Protocol
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec); sys.argv = [sys.argv[0], *sys.argv[2:]]
spec.loader.exec_module(module)
uvicorn.run(module.app, host="127.0.0.1", port=int(sys.argv[-1]), http=NoDelayH11Protocol,
            log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {process.stdout.read() if process.stdout else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("server did not start in 60 s")


def parse_wrk(text: str) -> dict:
    def seconds(value: str, unit: str) -> float:
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]

    out = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)", text, re.M)
        out[f"p{q}_ms"] = seconds(*m.groups()) * 1000 if m else None
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["errors"] = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in sock.groups()) if sock else 0
    )
    out["requests"] = int(re.search(r"(\d+) requests in", text).group(1))
    return out


def write_script(work: Path, name: str, body: str) -> Path:
    script = work / f"{name}.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}",
             'wrk.headers["Content-Type"] = "application/json"']  # fmt: skip
    script.write_text("\n".join(lines) + "\n")
    return script


def load(port: int, script: Path, duration: int, connections: int) -> dict:
    base = ["wrk", "-t2", f"-c{connections}", "-s", str(script), "--latency"]
    result = subprocess.run(
        [*base, f"-d{duration}s", f"http://127.0.0.1:{port}/predict"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return parse_wrk(result.stdout)


def combine(rounds: list[dict]) -> dict:
    """Rounds of one app -> requests/s over all of them; p50/p99: the median round's."""
    seconds = sum(r["requests"] / r["rps"] for r in rounds)
    requests = sum(r["requests"] for r in rounds)

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    return {
        "rps": requests / seconds,
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "errors": sum(r["errors"] for r in rounds),
        "requests": requests,
        "rounds": rounds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of load per app")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per app")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")

    from tests.deploy_helpers import make_bundle, raw_rows

    from valuegate.bundle import load_bundle
    from valuegate.registry import Registry

    work = Path(tempfile.mkdtemp(prefix="vg-serve-bench-"))
    registry = work / "registry"
    # the example's xgboost candidate with its configured parameters
    from valuegate.config import compose_config

    params = compose_config(ROOT / "conf", [])["model"]["xgboost"].get("params") or {}
    make_bundle(registry / "v1", params=dict(params))
    Registry(registry).promote("v1")
    bundle = load_bundle(registry / "v1")
    record = json.loads(raw_rows(1).drop(columns=["creditability"]).to_json(orient="records"))[0]
    vector = bundle.encoder.encode_record(record)[0].tolist()
    (work / "bare.py").write_text(BARE_APP)
    (work / "noop.py").write_text(NOOP_APP)
    (work / "runner.py").write_text(RUNNER)
    python = sys.executable
    valuegate = str(Path(python).parent / "valuegate")
    env = {**os.environ, "VALUEGATE_TOKEN": ""}
    servers: dict[str, tuple[subprocess.Popen, int, Path]] = {}
    try:
        for name in ("noop", "bare", "valuegate"):
            port = free_port()
            if name == "valuegate":
                cmd = [valuegate, "serve", "--registry", str(registry), "--port",
                       str(port), "--workers", str(args.workers), "--log",
                       str(work / "log.sqlite")]  # fmt: skip
                body = json.dumps(record)
            else:
                cmd = [python, str(work / "runner.py"), str(work / f"{name}.py"),
                       str(registry / "v1" / "booster.ubj"), str(port)]  # fmt: skip
                body = json.dumps(vector)
            process = subprocess.Popen(
                cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            servers[name] = (process, port, write_script(work, name, body))
            wait_up(port, process)
        for _process, port, script in servers.values():
            load(port, script, 3, args.connections)  # warm-up
        # Rounds alternate between the apps, so load from anything else on the machine
        # falls on each app alike; an idle server waiting for its turn costs nothing.
        per_round = max(1, args.duration // args.rounds)
        rounds: dict[str, list[dict]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, (_process, port, script) in servers.items():
                rounds[name].append(load(port, script, per_round, args.connections))
    finally:
        for process, _port, _script in servers.values():
            process.terminate()
            process.wait(timeout=20)
    results = {}
    for name in servers:
        r = results[name] = combine(rounds[name])
        print(
            f"{name:<10} {r['rps']:>8.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
            f"p99 {r['p99_ms']:.2f} ms  errors {r['errors']}  ({r['requests']} requests)"
        )
    from valuegate.serving.log import read_log_frame

    results["logged_rows"] = len(read_log_frame(work / "log.sqlite"))
    ratio = results["valuegate"]["rps"] / results["bare"]["rps"]
    p99 = results["valuegate"]["p99_ms"] / results["bare"]["p99_ms"]
    results["ratios"] = {"throughput": ratio, "p99": p99}
    print(f"valuegate/bare: throughput {ratio:.2f}x (target >= 0.8), p99 {p99:.2f}x "
          f"(target <= 1.5); prediction log rows: {results['logged_rows']}")  # fmt: skip
    results["settings"] = vars(args)
    out = ROOT / "bench" / "results" / "serve.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
