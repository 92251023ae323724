"""Pure-Python micro-benchmarks of the interpreter, run unchanged on every engine.

Each benchmark does a fixed amount of work per run and returns a checksum of what it
computed, so the engines can be checked to have done the same thing. `run()` times
every benchmark `repeat` times after one untimed warm-up run and reports the median.

    python3 suite.py [--repeat N] [--only NAME,...]   # prints the results as JSON

The same module is imported by app.py, the WSGI app that runs it inside python.wasm.
"""

import json
import re
import sys
import time
import zlib

# ---- the benchmarks -----------------------------------------------------------------
# Each entry: name -> (setup, body). setup() runs once, untimed; body(state) is one
# timed run and returns a value that goes into the checksum.


def _loop_setup():
    return 600_000


def _loop(n):
    # Integer arithmetic, comparisons and a function call per iteration.
    def step(x, i):
        return (x * 31 + i) & 0xFFFF

    acc = 0
    odd = 0
    for i in range(n):
        acc = step(acc, i)
        if acc & 1:
            odd += 1
    return acc, odd


def _dict_setup():
    keys = ["key-%d" % i for i in range(100_000)]
    return keys


def _dict(keys):
    # Inserts under str and int keys, lookups that hit and miss, updates and deletes.
    d = {}
    for i, k in enumerate(keys):
        d[k] = i
    by_int = {}
    for i in range(len(keys)):
        by_int[i * 7] = i
    hits = 0
    for k in keys:
        hits += d[k]
    misses = 0
    for i in range(0, len(keys) * 7, 3):
        if i not in by_int:
            misses += 1
    for k in keys[::2]:
        d[k] += 1
    for k in keys[1::4]:
        del d[k]
    return len(d), hits, misses, sum(d.values())


def _format_setup():
    return [(i, "name%d" % i, i * 1.25) for i in range(25_000)]


def _format(rows):
    # f-strings, %-formatting, str.format, join and a few str methods.
    out = []
    for i, name, value in rows:
        out.append(f"{i:05d}|{name:>10}|{value:8.2f}")
        out.append("%s=%r (%x)" % (name, value, i))
        out.append("{0}-{1!s}-{2:.3e}".format(name.upper(), i, value))
    text = "\n".join(out)
    return len(text), text.count("|"), zlib.crc32(text.encode())


def _json_setup():
    doc = {
        "users": [
            {
                "id": i,
                "name": "user %d" % i,
                "email": "user%d@example.org" % i,
                "active": i % 3 != 0,
                "score": i * 0.5,
                "tags": ["t%d" % (i % 7), "t%d" % (i % 11)],
                "address": {"street": "%d Main St" % i, "zip": "%05d" % (i * 13 % 100000)},
            }
            for i in range(800)
        ],
        "meta": {"count": 800, "source": "micro", "unicode": "caf\u00e9 \u2603"},
    }
    return doc


def _json(doc):
    total = 0
    crc = 0
    for _ in range(12):
        text = json.dumps(doc)
        back = json.loads(text)
        total += len(text) + len(back["users"])
        crc = zlib.crc32(text.encode(), crc)
    pretty = json.dumps(doc, indent=2, sort_keys=True)
    return total, crc, len(pretty)


def _regex_setup():
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    lines = []
    for i in range(10_000):
        w = words[i % len(words)]
        lines.append(
            "%s user%d@example.org 2024-%02d-%02d GET /items/%d?page=%d HTTP/1.1 %d"
            % (w, i, i % 12 + 1, i % 28 + 1, i, i % 9, 200 + (i % 5) * 100)
        )
    text = "\n".join(lines)
    patterns = (
        re.compile(r"[\w.]+@[\w.]+\.\w+"),
        re.compile(r"(\d{4})-(\d{2})-(\d{2})"),
        re.compile(r"^(\w+) .* (\d{3})$", re.M),
        re.compile(r"/items/(\d+)\?page=(\d+)"),
    )
    return text, patterns


def _regex(state):
    text, (email, date, line, item) = state
    emails = email.findall(text)
    dates = sum(int(m.group(2)) for m in date.finditer(text))
    statuses = {}
    for word, status in line.findall(text):
        statuses[status] = statuses.get(status, 0) + 1
    swapped = item.sub(r"/p/\2/i/\1", text)
    return len(emails), dates, sorted(statuses.items()), zlib.crc32(swapped.encode())


_TEMPLATE = """<!doctype html>
<html><head><title>{{ title|e }}</title></head>
<body>
{% macro badge(kind) %}<span class="badge badge-{{ kind }}">{{ kind|upper }}</span>{% endmacro %}
<h1>{{ title }}</h1>
<table>
{% for row in rows %}
  <tr class="{{ loop.cycle('odd', 'even') }}">
    <td>{{ loop.index }}</td>
    <td>{{ row.name|title }}</td>
    <td>{{ "%.2f"|format(row.price) }}</td>
    <td>{% if row.stock > 10 %}{{ badge("ok") }}{% elif row.stock %}{{ badge("low") }}{% else %}{{ badge("out") }}{% endif %}</td>
    <td>{{ row.tags|join(", ") }}</td>
  </tr>
{% endfor %}
</table>
<p>{{ rows|length }} items, {{ rows|sum(attribute="stock") }} in stock</p>
</body></html>
"""


def _jinja2_setup():
    import jinja2

    env = jinja2.Environment(autoescape=True)
    template = env.from_string(_TEMPLATE)
    rows = [
        {"name": "item number %d" % i, "price": i * 1.5, "stock": i % 23, "tags": ["a%d" % (i % 4), "b%d" % (i % 6)]}
        for i in range(300)
    ]
    return template, rows


def _jinja2(state):
    template, rows = state
    total = 0
    crc = 0
    for i in range(8):
        html = template.render(title="Inventory <%d>" % i, rows=rows)
        total += len(html)
        crc = zlib.crc32(html.encode(), crc)
    return total, crc


BENCHMARKS = {
    "loop": (_loop_setup, _loop),
    "dict": (_dict_setup, _dict),
    "format": (_format_setup, _format),
    "json": (_json_setup, _json),
    "regex": (_regex_setup, _regex),
    "jinja2": (_jinja2_setup, _jinja2),
}


# ---- the runner ---------------------------------------------------------------------


def _checksum(value):
    return "%08x" % zlib.crc32(repr(value).encode())


def run(repeat=5, only=None):
    """Runs the benchmarks named in `only` (all by default) and returns a dict that
    json.dumps can write: the interpreter's version and, per benchmark, the median, the
    fastest and every run's seconds and the checksum of its result."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1, got %r" % (repeat,))
    names = list(BENCHMARKS) if not only else list(only)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError("unknown benchmark(s) %s; choose from %s" % (", ".join(unknown), ", ".join(BENCHMARKS)))
    results = []
    for name in names:
        setup, body = BENCHMARKS[name]
        state = setup()
        check = _checksum(body(state))  # warm-up, untimed
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            value = body(state)
            times.append(time.perf_counter() - t0)
            if _checksum(value) != check:
                raise RuntimeError("benchmark %s returned a different result on a later run" % name)
        ordered = sorted(times)
        mid = len(ordered) // 2
        median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        results.append({"name": name, "median": median, "min": ordered[0], "times": times, "check": check})
    return {
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "repeat": repeat,
        "benchmarks": results,
    }


def main(argv):
    import argparse

    p = argparse.ArgumentParser(description="Runs the micro-benchmarks and prints JSON.")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per benchmark (default 5)")
    p.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    args = p.parse_args(argv)
    only = [n for n in args.only.split(",") if n]
    try:
        out = run(args.repeat, only)
    except ValueError as e:
        p.error(str(e))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
