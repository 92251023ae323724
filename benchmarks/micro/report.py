"""Compares micro-suite results: JSON files as suite.run() writes them, per engine.

    python3 report.py native=native.json wazero=wazero.json node=node.json
    python3 report.py native=n1.json,n2.json,n3.json new=a1.json,a2.json,a3.json

Several files for one engine (rounds of the same measurement) are merged: a benchmark's
time is the median of the rounds' medians. The first engine is the baseline. Prints a Markdown table with each benchmark's median
seconds per engine and the ratio engine/baseline, then the geometric mean of those
ratios per engine. Exits 1 when the engines disagree on a benchmark's checksum (they
did not compute the same thing) or do not cover the same benchmarks.
"""

import json
import math
import sys


def load(arg):
    name, sep, paths = arg.partition("=")
    if not sep or not name or not paths:
        raise SystemExit("report.py: argument %r must look like engine=results.json[,more.json]" % arg)
    rounds = []
    for path in paths.split(","):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise SystemExit("report.py: %s results %s: %s" % (name, path, e))
        if "benchmarks" not in data:
            raise SystemExit("report.py: %s results %s hold no \"benchmarks\" list: %s" % (name, path, str(data)[:200]))
        rounds.append(data)
    return name, merge(name, rounds)


def median(xs):
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def merge(name, rounds):
    """One result from several rounds: per benchmark the median of the medians."""
    if len(rounds) == 1:
        return rounds[0]
    merged = dict(rounds[0], rounds=len(rounds), benchmarks=[])
    for bench in rounds[0]["benchmarks"]:
        same = [b for r in rounds for b in r["benchmarks"] if b["name"] == bench["name"]]
        if len(same) != len(rounds):
            raise SystemExit("report.py: %s: benchmark %s is missing from some rounds" % (name, bench["name"]))
        if len({b["check"] for b in same}) != 1:
            raise SystemExit("report.py: %s: benchmark %s has different checksums across rounds" % (name, bench["name"]))
        merged["benchmarks"].append({
            "name": bench["name"],
            "median": median([b["median"] for b in same]),
            "check": bench["check"],
        })
    return merged


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def report(runs):
    """runs: [(engine, data)], baseline first. Returns (text, problems)."""
    base_name, base = runs[0]
    order = [b["name"] for b in base["benchmarks"]]
    by_engine = {name: {b["name"]: b for b in data["benchmarks"]} for name, data in runs}
    problems = []
    for name, results in by_engine.items():
        if sorted(results) != sorted(order):
            problems.append("%s ran %s, %s ran %s" % (base_name, sorted(order), name, sorted(results)))
    others = [name for name, _ in runs[1:]]
    head = ["benchmark"] + ["%s s" % name for name, _ in runs] + ["%s/%s" % (o, base_name) for o in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ratios = {o: [] for o in others}
    for bench in order:
        row = [bench]
        for name, _ in runs:
            b = by_engine[name].get(bench)
            row.append("%.4f" % b["median"] if b else "-")
        base_b = by_engine[base_name][bench]
        for o in others:
            b = by_engine[o].get(bench)
            if b is None:
                row.append("-")
                continue
            if b["check"] != base_b["check"]:
                problems.append("%s: checksum %s on %s but %s on %s" % (bench, base_b["check"], base_name, b["check"], o))
            r = b["median"] / base_b["median"]
            ratios[o].append(r)
            row.append("%.2fx" % r)
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for o in others:
        if ratios[o]:
            lines.append("geometric mean %s/%s: %.2fx over %d benchmarks" % (o, base_name, geomean(ratios[o]), len(ratios[o])))
    versions = ", ".join("%s: Python %s (%s)" % (name, data.get("python", "?"), data.get("platform", "?")) for name, data in runs)
    lines.append("interpreters: " + versions)
    how = "median of %s timed runs per benchmark, after one warm-up run" % base.get("repeat", "?")
    if base.get("rounds"):
        how += "; median of %d rounds" % base["rounds"]
    lines.append(how)
    return "\n".join(lines), problems


def main(argv):
    if len(argv) < 1:
        raise SystemExit(__doc__.strip())
    text, problems = report([load(a) for a in argv])
    print(text)
    for p in problems:
        print("report.py: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
