#!/usr/bin/env python3
"""Turn criterion's estimates into the ratios that BENCHMARKS.md reports.

Usage, from the crate root:

    python3 benches/report.py collect   # after each `cargo bench`
    python3 benches/report.py table     # markdown for BENCHMARKS.md

`collect` reads the median of every benchmark from
target/criterion/**/new/estimates.json and saves it with the load average
as target/bench-runs/run-N.json. `table` computes the ratios within each
saved run and prints their minimum, median and maximum over the runs.
Python 3 standard library only.
"""

import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys

CRITERION_DIR = pathlib.Path("target/criterion")
RUNS_DIR = pathlib.Path("target/bench-runs")

# Requests in one end_to_end iteration, as REQUESTS_PER_ITERATION in
# benches/end_to_end.rs.
REQUESTS_PER_ITERATION = 64


def collect():
    """Save the median of every benchmark of the last `cargo bench`."""
    medians = {}
    for estimates_path in sorted(CRITERION_DIR.glob("**/new/estimates.json")):
        benchmark_path = estimates_path.with_name("benchmark.json")
        with open(benchmark_path) as file:
            full_id = json.load(file)["full_id"]
        with open(estimates_path) as file:
            medians[full_id] = json.load(file)["median"]["point_estimate"]
    if not medians:
        sys.exit(f"no estimates found under {CRITERION_DIR}; run `cargo bench` first")

    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    number = len(list(RUNS_DIR.glob("run-*.json"))) + 1
    run = {
        "collected": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "load_average": os.getloadavg(),
        "median_ns": medians,
    }
    path = RUNS_DIR / f"run-{number}.json"
    with open(path, "w") as file:
        json.dump(run, file, indent=1, sort_keys=True)
    print(f"saved {len(medians)} medians to {path}")


def load_runs():
    paths = sorted(RUNS_DIR.glob("run-*.json"), key=lambda path: int(path.stem[4:]))
    if not paths:
        sys.exit(f"no runs in {RUNS_DIR}; run `cargo bench` and `collect` first")
    runs = []
    for path in paths:
        with open(path) as file:
            runs.append((path.stem, json.load(file)))
    return runs


def ratio_rows(medians):
    """Returns (section, label, value, target) rows for one run.

    `target` is a (comparison, bound) pair or None.
    """
    ns = medians
    rows = []

    def add(section, label, value, target=None):
        rows.append((section, label, value, target))

    # Request path: the layer's added time is a variant minus its bare
    # counterpart, which builds the same request and calls the same inner
    # service.
    floor = ns["request_path/floor"]
    warm_floor = ns["request_path/floor_warm_map"]
    add("request path", "floor: clone + insert into an empty HeaderMap (ns)", floor)
    add("request path", "floor_warm_map: clone + insert into a map with room (ns)", warm_floor)
    empty_added = ns["request_path/empty_jar"] - ns["request_path/bare"]
    add("request path", "empty jar, added ns", empty_added)
    add("request path", "empty jar, added / floor", empty_added / floor)
    replay_added = ns["request_path/replay"] - ns["request_path/bare"]
    add("request path", "replay only, added ns", replay_added)
    add("request path", "replay only, added / floor", replay_added / floor, ("<=", 2.0))
    warm_added = ns["request_path/replay_with_header"] - ns["request_path/bare_with_header"]
    add("request path", "replay into a map with room, added ns", warm_added)
    add("request path", "replay into a map with room, added / floor_warm_map", warm_added / warm_floor)

    bare_rotating = ns["request_path/bare_rotating"]
    ours = ns["request_path/capture_replay"] - bare_rotating
    reqwest = ns["request_path/reqwest_capture_replay"] - bare_rotating
    cookie_store = ns["request_path/cookie_store_capture_replay"] - bare_rotating
    add("request path", "capture + replay, ours, added ns", ours)
    add("request path", "capture + replay, reqwest Jar, added ns", reqwest)
    add("request path", "capture + replay, cookie_store, added ns", cookie_store)
    add("request path", "capture + replay, ours added / floor", ours / floor)
    add("request path", "capture + replay, reqwest added / ours added", reqwest / ours, (">=", 5.0))
    add("request path", "capture + replay, cookie_store added / ours added", cookie_store / ours)
    add(
        "request path",
        "capture + replay, reqwest total / ours total",
        ns["request_path/reqwest_capture_replay"] / ns["request_path/capture_replay"],
    )
    add("request path", "replay only, reqwest capture + replay added / ours replay added", reqwest / replay_added)

    # Fixed costs of the replay path, each against the floor.
    for name, label in (
        ("system_time_now", "SystemTime::now, to check expiry"),
        ("mutex_lock_unlock", "Mutex lock + unlock, the jar's lock"),
        ("arc_clone_drop", "Arc clone + drop, the jar in the response future"),
    ):
        value = ns[f"primitives/{name}"]
        add("fixed costs of the replay path", f"{label} (ns)", value)
        add("fixed costs of the replay path", f"{label} / floor", value / floor)

    # Lookup among other hosts.
    for jar in ("ours", "reqwest", "cookie_store"):
        with_one_host = ns[f"lookup/{jar}/1"]
        for hosts in (1, 100, 1000):
            value = ns[f"lookup/{jar}/{hosts}"]
            add("lookup", f"{jar}, {hosts} other hosts (ns)", value)
        for hosts in (100, 1000):
            target = ("<=", 1.2) if jar == "ours" and hosts == 1000 else None
            ratio = ns[f"lookup/{jar}/{hosts}"] / with_one_host
            add("lookup", f"{jar}, {hosts} / 1 other host", ratio, target)
    for hosts in (1, 100, 1000):
        ours_lookup = ns[f"lookup/ours/{hosts}"]
        add("lookup", f"ours / floor, {hosts} other hosts", ours_lookup / floor)
        add("lookup", f"reqwest / ours, {hosts} other hosts", ns[f"lookup/reqwest/{hosts}"] / ours_lookup)

    # Contention: per-request wall time.
    for variant in ("bare", "sticky", "sticky_replay"):
        single = ns[f"contention/{variant}/1_tasks"]
        many = ns[f"contention/{variant}/64_tasks"]
        add("contention", f"{variant}, 1 task (ns per request)", single)
        add("contention", f"{variant}, 64 tasks (ns per request)", many)
        target = ("<=", 1.3) if variant == "sticky" else None
        add("contention", f"{variant}, 64 tasks / 1 task", many / single, target)

    # End to end: requests per second and the layered share of bare.
    for pinning in ("rotating", "pinned"):
        for in_flight in (1, 16):
            parameter = f"{pinning}_{in_flight}_in_flight"
            bare = ns[f"end_to_end/bare/{parameter}"]
            sticky = ns[f"end_to_end/sticky/{parameter}"]
            add("end to end", f"{pinning}, {in_flight} in flight, bare req/s", REQUESTS_PER_ITERATION / bare * 1e9)
            add("end to end", f"{pinning}, {in_flight} in flight, sticky req/s", REQUESTS_PER_ITERATION / sticky * 1e9)
            target = (">=", 0.98) if in_flight == 16 else None
            add("end to end", f"{pinning}, {in_flight} in flight, sticky / bare req/s", bare / sticky, target)
    return rows


def format_number(value):
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def verdict(values, target):
    if target is None:
        return ""
    comparison, bound = target
    median = statistics.median(values)
    target_met = median <= bound if comparison == "<=" else median >= bound
    return f"{comparison} {bound:g}: {'met' if target_met else 'missed'}"


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}, {rustc}"


def table():
    runs = load_runs()
    per_run = [ratio_rows(run["median_ns"]) for _, run in runs]
    print(f"Machine: {machine()}")
    print()
    print("| run | collected (UTC) | load average (1, 5, 15 min) |")
    print("|---|---|---|")
    for name, run in runs:
        load = ", ".join(f"{value:.2f}" for value in run["load_average"])
        print(f"| {name} | {run['collected'][:19]} | {load} |")

    section = None
    for index, (row_section, label, _, target) in enumerate(per_run[0]):
        if row_section != section:
            section = row_section
            print()
            print(f"### {section}")
            print()
            print("| figure | min | median | max | target |")
            print("|---|---:|---:|---:|---|")
        values = [rows[index][2] for rows in per_run]
        cells = [format_number(value) for value in (min(values), statistics.median(values), max(values))]
        print(f"| {label} | {' | '.join(cells)} | {verdict(values, target)} |")
    print()
    print(f"{len(runs)} runs; min, median and max are taken over the runs of each figure.")


def main():
    commands = {"collect": collect, "table": table}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} collect|table")
    commands[sys.argv[1]]()


if __name__ == "__main__":
    main()
