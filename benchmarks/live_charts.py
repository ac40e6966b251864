"""What the live dashboard costs: training throughput with and without its charts, inside a real Jupyter kernel.

A kernel is started with ``jupyter_client`` (widget messages really go out on its iopub socket; this client
reads them, as a front end would). In it, the same config is trained alternately

* *plain*: a ``LiveRun`` (worker thread, no widgets), and
* *dashboard*: ``training_dashboard(config)``, displayed, then ``start(); join()`` (charts and status line
  redrawn from the training thread, throttled),

and the script prints the median steps/s of each, the overhead, and the share of wall time the charts spent
redrawing. A second part times one forced redraw of all eight curves against the points kept per curve.

    PYTHONPATH=. python benchmarks/live_charts.py --steps 400 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import textwrap

from jupyter_client.manager import start_new_kernel

KERNEL_CODE = textwrap.dedent(
    """
    import json, statistics, time
    import torch
    from IPython.display import display
    from workbench.datasets import load_dataset
    from workbench.train import History, TrainConfig
    from workbench.ui import LiveCharts, LiveRun, training_dashboard

    torch.set_num_threads(1)
    config = TrainConfig(**{config!r})
    data = load_dataset(config.dataset, seed=config.seed, **config.dataset_options)

    def plain():
        run = LiveRun(config, data=data)
        started = time.perf_counter()
        run.start().join()
        return {{"steps_per_second": run.trainer.step / (time.perf_counter() - started)}}

    def dashboard():
        panel = training_dashboard(config)
        display(panel)
        started = time.perf_counter()
        panel.start()
        panel.join()
        wall = time.perf_counter() - started
        return {{
            "steps_per_second": panel.run.trainer.step / wall,
            "draw_share": panel.charts.seconds_drawing / wall,
            "redraws_per_second": panel.charts.redraws / wall,
        }}

    plain(); dashboard()  # warm-up: caches, allocator, first widget messages
    results = {{"plain": [], "dashboard": []}}
    for _ in range({repeats}):
        results["plain"].append(plain())
        results["dashboard"].append(dashboard())

    redraw_ms = {{}}
    history = History()
    for step in range({rows}):
        history.log(step, step / 31, {{"train_loss": 1.0, "lr": 0.1}})
        if step % 10 == 0:
            history.log(step, step / 31, {{m: 1.0 for m in ("lambda_1", "trace", "trace_stderr", "angle_g_v1",
                                                           "alignment_eps_v1", "test_loss", "test_accuracy",
                                                           "train_accuracy")}})
    for max_points in {max_points}:
        charts = LiveCharts(max_points=max_points)
        display(charts.figure)
        charts.follow("run", history)
        times = []
        for step in range({rows}, {rows} + 20):
            history.log(step, step / 31, {{"train_loss": 1.0, "lambda_1": 1.0, "trace": 1.0, "test_loss": 1.0}})
            started = time.perf_counter()
            charts.refresh(force=True)
            times.append(time.perf_counter() - started)
        redraw_ms[max_points] = 1000 * statistics.median(times)
    print("RESULT" + json.dumps({{"runs": results, "redraw_ms": redraw_ms}}))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--optimizer", default="sgd", help="sgd: the fastest steps, the hardest case for the charts")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--probe-every", type=int, default=0, help="0: no probes (the hardest case)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20_000, help="train_loss rows for the redraw-cost part")
    parser.add_argument("--max-points", type=int, nargs="+", default=[250, 1000, 4000])
    args = parser.parse_args()
    config = {
        "dataset": args.dataset,
        "model": args.model,
        "optimizer": args.optimizer,
        "steps": args.steps,
        "probe_every": args.probe_every or None,
    }
    code = KERNEL_CODE.format(config=config, repeats=args.repeats, rows=args.rows, max_points=args.max_points)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    manager, client = start_new_kernel(kernel_name="python3", env=environment)
    lines: list[str] = []

    def collect(message: dict) -> None:  # read every iopub message, widget updates included
        if message["msg_type"] == "stream":
            lines.append(message["content"]["text"])
        elif message["msg_type"] == "error":
            lines.append("\n".join(message["content"]["traceback"]))

    try:
        client.execute_interactive(code, output_hook=collect, timeout=3600)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    text = "".join(lines)
    if "RESULT" not in text:
        sys.exit(f"the kernel did not finish:\n{text}")
    results = json.loads(text.split("RESULT", 1)[1].splitlines()[0])
    plain = [run["steps_per_second"] for run in results["runs"]["plain"]]
    charted = [run["steps_per_second"] for run in results["runs"]["dashboard"]]
    paired = [1 - c / p for p, c in zip(plain, charted, strict=True)]
    draw = [run["draw_share"] for run in results["runs"]["dashboard"]]
    redraws = [run["redraws_per_second"] for run in results["runs"]["dashboard"]]
    print(f"config: {config}, {args.repeats} interleaved repeats, medians")
    print(f"plain LiveRun        {statistics.median(plain):8.1f} steps/s   runs {[round(v, 1) for v in plain]}")
    print(f"dashboard (charts)   {statistics.median(charted):8.1f} steps/s   runs {[round(v, 1) for v in charted]}")
    pairs = [f"{100 * v:.1f}" for v in paired]
    print(f"throughput overhead  {100 * statistics.median(paired):8.2f} %   (paired runs {pairs})")
    print(
        f"charts' share of wall time {100 * statistics.median(draw):.2f} %, {statistics.median(redraws):.1f} redraws/s"
    )
    for max_points, milliseconds in results["redraw_ms"].items():
        print(f"one redraw of all curves, {max_points:>5} points per curve: {milliseconds:.2f} ms")


if __name__ == "__main__":
    main()
