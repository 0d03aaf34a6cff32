#!/usr/bin/env python3
"""Writes docs/benchmarks.md from bench/run.sh's raw outputs: `report.py META INDEX > out.md`.

META is KEY=VALUE lines (machine, versions, settings). INDEX is tab-separated lines:
    hello  MODE  MODEL  ROLE  NAME  WRK_OUTPUT_FILE|FAILED  PEAK_RSS_KIB
    burst  N     MODEL  ROLE  NAME  CLIENT_OUTPUT_FILE|SKIP|FAILED  PEAK_RSS_KIB|ESTIMATE_S
    note   TEXT

It also draws the tables as SVG charts (`bench-keepalive.svg`, `bench-close.svg`,
`bench-bursts.svg`) into $BENCH_IMG (default: docs/img/ of this repository) and links them
from the report as `img/NAME.svg`, which is right for the default BENCH_OUT, docs/benchmarks.md.

    report.py --charts-from docs/benchmarks.md DIR

draws the same charts from the tables of an existing report, without its raw outputs (what
docs/img/make.sh does: the numbers stay those of the last full bench run).

The charts are plain text (python3's standard library only): one horizontal bar per server,
grouped by model, coloured by role (socketserver, the model's minimal limit, Python's twin,
nginx), the value written at the end of each bar.
"""

import os
import re
import sys

MODELS = ["sequential", "threaded", "forking", "pool", "prefork", "reference"]
ROLE_ORDER = {"ours": 0, "minimal": 1, "python": 2, "reference": 3}
ROLE_LABEL = {"ours": "socketserver", "minimal": "minimal", "python": "Python", "reference": "reference"}
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def read_autogroup():
    """The machine's sched_autogroup_enabled ("0" or "1"), or "" where the kernel has none."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return f.read().strip()
    except OSError:
        return ""


def row_label(r):
    """A row's server name: ours in bold, ⚠ when a machine stall overlapped every attempt."""
    label = f"**{r['name']}**" if r["role"] == "ours" else r["name"]
    return label + " ⚠" if r["stall"] else label


def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNIT[m.group(2)] if m else None


def parse_wrk(path):
    r = {"rps": None, "p50": None, "p99": None, "errors": 0, "requests": None}
    try:
        text = open(path).read()
    except OSError:
        return r
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        r["rps"] = float(m.group(1))
    if m := re.search(r"^\s+50%\s+(\S+)", text, re.M):
        r["p50"] = ms(m.group(1))
    if m := re.search(r"^\s+99%\s+(\S+)", text, re.M):
        r["p99"] = ms(m.group(1))
    if m := re.search(r"(\d+) requests in", text):
        r["requests"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        r["errors"] += sum(int(x) for x in m.groups())
        r["timeouts"] = int(m.group(4))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        r["errors"] += int(m.group(1))
    return r


def parse_client(path):
    r = {"wall": None, "answered": None, "of": None, "errors": ""}
    try:
        text = open(path).read()
    except OSError:
        return r
    if m := re.search(r"^wall time\s+([\d.]+) s", text, re.M):
        r["wall"] = float(m.group(1))
    if m := re.search(r"^answered\s+(\d+) of (\d+)", text, re.M):
        r["answered"], r["of"] = int(m.group(1)), int(m.group(2))
    if m := re.search(r"^errors\s+(.*)$", text, re.M):
        r["errors"] = m.group(1).strip()
    return r


def num(x, fmt="{:,.0f}"):
    return "–" if x is None else fmt.format(x)


def ratio(a, b):
    return "–" if not a or not b else f"{a / b:.2f}×"


def spread(r):
    return "–" if r.get("spread") is None else f"−{100 * r['spread']:.0f}%"


def mib(kib):
    # 0: the sampler saw no sample (a server stopped before the sampler's first look).
    return "–" if not kib or int(kib) == 0 else f"{int(kib) / 1024:.1f} MiB"

# ---------------------------------------------------------------------------------------------
# SVG charts. Colours are mid-tones that read on a white page and a dark one; the background
# and text follow `prefers-color-scheme`, like the client's pictures (course/src/client/svg/).

ROLE_COLOUR = {"ours": "#4e79a7", "minimal": "#a0cbe8", "python": "#f28e2b", "reference": "#59a14f"}
SVG_STYLE = (
    ".bg{fill:#ffffff}.fg{fill:#1f2328}.mute{fill:#59636e}.grid{stroke:#d8dee4}.axis{stroke:#59636e}"
    "@media (prefers-color-scheme:dark){.bg{fill:#0d1117}.fg{fill:#e6edf3}.mute{fill:#9198a1}"
    ".grid{stroke:#30363d}.axis{stroke:#9198a1}}"
    + "".join(f".{role}{{fill:{c}}}" for role, c in ROLE_COLOUR.items())
    + "text{dominant-baseline:middle}.b{font-weight:600}"
)


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def nice_ticks(top, most=5):
    """0 and multiples of 1, 2 or 5 x 10^k up to `top`, at most `most` intervals."""
    top = top if top and top > 0 else 1.0
    mag = 10 ** int(f"{top / most:e}".split("e")[1])
    step = next(m * mag for m in (1, 2, 5, 10, 20) if top / (m * mag) <= most)
    return [i * step for i in range(int(top / step + 1e-9) + 1)], step


def svg_bars(title, note, sections, unit, fmt, tick_fmt):
    """A horizontal bar chart as SVG text.

    sections: [(heading, [(label, role, value or None, text if value is None)])]; a row whose
    value is None shows its text instead of a bar (a skipped or failed measurement). `fmt`
    writes a bar's value, `tick_fmt` an axis tick.
    """
    width, label_w, row_h, head_h = 900, 230, 20, 22
    plot_x, plot_w = 16 + label_w, width - 16 - label_w - 90
    values = [v for _, rows in sections for _, _, v, _ in rows if v is not None]
    ticks, _ = nice_ticks(max(values, default=1.0), 5)
    top = max(ticks[-1], max(values, default=1.0))
    height = 70 + sum(head_h + row_h * len(rows) for _, rows in sections) + 60
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        "font-family=\"system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\" font-size=\"13\" role=\"img\">",
        f"<title>{esc(title)}</title>",
        f"<style>{SVG_STYLE}</style>",
        '<rect class="bg" width="100%" height="100%"/>',
        f'<text x="16" y="20" class="fg b">{esc(title)}</text>',
        f'<text x="16" y="40" class="mute">{esc(note)}</text>',
    ]
    y0 = 64
    y_end = height - 50
    for t in ticks:
        x = plot_x + t / top * plot_w
        out.append(f'<path class="grid" d="M{x:.1f} {y0}V{y_end}"/>')
        out.append(f'<text x="{x:.1f}" y="{y_end + 14}" class="mute" text-anchor="middle">{esc(tick_fmt(t))}</text>')
    out.append(f'<path class="axis" d="M{plot_x} {y0}V{y_end}"/>')
    y = y0
    for heading, rows in sections:
        out.append(f'<text x="16" y="{y + head_h / 2 + 2:.1f}" class="fg b">{esc(heading)}</text>')
        y += head_h
        for label, role, value, text in rows:
            mid = y + row_h / 2
            out.append(f'<text x="{plot_x - 8}" y="{mid:.1f}" class="fg" text-anchor="end">{esc(label)}</text>')
            if value is None:
                out.append(f'<text x="{plot_x + 6}" y="{mid:.1f}" class="mute">{esc(text)}</text>')
            else:
                w = max(value / top * plot_w, 1.0)
                out.append(f'<rect class="bar {role}" x="{plot_x}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}"/>')
                out.append(f'<text x="{plot_x + w + 6:.1f}" y="{mid:.1f}" class="fg">{esc(fmt(value))}</text>')
            y += row_h
    out.append(f'<text x="{plot_x + plot_w}" y="{y_end + 34}" class="mute" text-anchor="end">{esc(unit)}</text>')
    lx = 16
    present = {role for _, rows in sections for _, role, _, _ in rows}
    for role in [r for r in ["ours", "minimal", "python", "reference"] if r in present]:
        name = {"ours": "socketserver", "minimal": "minimal (the model's limit)", "python": "Python", "reference": "nginx"}[role]
        out.append(f'<rect class="{role}" x="{lx}" y="{y_end + 28}" width="14" height="12"/>')
        out.append(f'<text x="{lx + 20}" y="{y_end + 34}" class="mute">{esc(name)}</text>')
        lx += 20 + 7.8 * len(name) + 16
    out.append("</svg>")
    return "\n".join(out) + "\n"


def chart_hello(hello, mode):
    """The req/s chart of one wrk table: each model's servers, then nginx."""
    rows = sorted((r for r in hello if r["mode"] == mode), key=lambda r: (MODELS.index(r["model"]), ROLE_ORDER[r["role"]]))
    sections = []
    for model in MODELS:
        mine = [r for r in rows if r["model"] == model]
        if mine:
            entries = [(r["name"] + (" ⚠" if r.get("stall") else ""), r["role"], None if r.get("failed") else r.get("rps"),
                        "did not start" if r.get("failed") else "no result") for r in mine]
            sections.append(("nginx, the reference" if model == "reference" else model, entries))
    what = "keep-alive" if mode == "keepalive" else "Connection: close (a new connection per request)"
    return svg_bars(f"/hello, {what}: requests per second", "wrk -t2 -c32, each server's best round; longer is faster",
                    sections, "requests per second", lambda v: f"{v:,.0f}", lambda v: f"{v:,.0f}")


def chart_bursts(bursts):
    """The burst chart: wall seconds for N concurrent one-second requests, per N and server."""
    sections = []
    for n in sorted({b["n"] for b in bursts}):
        rows = sorted((b for b in bursts if b["n"] == n), key=lambda b: (MODELS.index(b["model"]), ROLE_ORDER[b["role"]]))
        entries = []
        for b in rows:
            label = f"{b['model']}: {b['name']}" + (" ⚠" if b.get("stall") else "")
            if b.get("skip"):
                entries.append((label, b["role"], None, b["skip"]))
            else:
                entries.append((label, b["role"], b.get("wall"), "no result"))
        sections.append((f"N = {n}", entries))
    return svg_bars("Bursts: wall time for N concurrent /delay?s=1 (each sleeps 1 s)",
                    "the bundled client; 1 s is ideal whatever N is; shorter is better",
                    sections, "seconds", lambda v: f"{v:.2f} s", lambda v: f"{v:g} s" if v else "0")


def charts(hello, bursts):
    """{file name: SVG text} for the tables that have rows."""
    out = {}
    for mode in ["keepalive", "close"]:
        if any(r["mode"] == mode for r in hello):
            out[f"bench-{mode}.svg"] = chart_hello(hello, mode)
    if bursts:
        out["bench-bursts.svg"] = chart_bursts(bursts)
    return out


def img_dir():
    return os.environ.get("BENCH_IMG") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "img")


def write_charts(files, directory):
    os.makedirs(directory, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)


def rows_from_markdown(text):
    """The hello and burst rows of an existing report's tables (for --charts-from)."""
    hello, bursts, mode = [], [], None

    def role_of(model, name):
        if name.startswith("**"):
            return "ours"
        if model == "reference":
            return "reference"
        return "minimal" if name.startswith("min_") else "python"

    for line in text.splitlines():
        if line.startswith("## "):
            mode = "keepalive" if "keep-alive" in line else "close" if "Connection: close" in line else "bursts" if "Bursts" in line else None
            continue
        if not line.startswith("| ") or line.startswith("|---") or mode is None:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if mode in ("keepalive", "close") and len(cells) >= 3 and cells[0] != "model":
            model, name = cells[0], cells[1]
            stall = name.endswith("⚠")
            name = name.replace("⚠", "").strip()
            role = role_of(model, name)
            failed = cells[2] == "did not start"
            rps = None if failed or cells[2] == "–" else float(cells[2].replace(",", ""))
            hello.append({"mode": mode, "model": model, "role": role, "name": name.strip("*"), "rps": rps, "failed": failed, "stall": stall})
        elif mode == "bursts" and len(cells) >= 4 and cells[0] != "N":
            n, model, name = int(cells[0]), cells[1], cells[2]
            stall = name.endswith("⚠")
            name = name.replace("⚠", "").strip()
            row = {"n": n, "model": model, "role": role_of(model, name), "name": name.strip("*"), "stall": stall, "skip": None, "wall": None}
            if cells[3].startswith("skipped") or cells[3] == "did not start":
                row["skip"] = cells[3]
            elif cells[3] != "–":
                row["wall"] = float(cells[3])
            bursts.append(row)
    return hello, bursts



def main():
    meta = dict(line.rstrip("\n").split("=", 1) for line in open(sys.argv[1]) if "=" in line)
    hello, bursts, notes = [], [], []
    for line in open(sys.argv[2]):
        f = line.rstrip("\n").split("\t")
        if f[0] == "note":
            notes.append(f[1])
        elif f[0] == "hello":
            _, mode, model, role, name, path, rss, stall = f
            row = {"mode": mode, "model": model, "role": role, "name": name, "rss": rss or None, "stall": stall == "1"}
            row.update(parse_wrk(path) if path != "FAILED" else {"rps": None, "p50": None, "p99": None, "errors": None})
            row["failed"] = path == "FAILED"
            hello.append(row)
        elif f[0] == "burst":
            _, n, model, role, name, path, extra, stall = f
            row = {"n": int(n), "model": model, "role": role, "name": name, "skip": None, "rss": None, "stall": stall == "1"}
            if path == "SKIP":
                row["skip"] = f"skipped: about {extra} s by the model's arithmetic"
            elif path == "FAILED":
                row["skip"] = "did not start"
            else:
                row.update(parse_client(path))
                row["rss"] = extra
            bursts.append(row)

    # Several rounds of the same measurement: keep the best (interference only slows a run
    # down) and remember how far the worst round was from it.
    best = {}
    for r in hello:
        key = (r["mode"], r["model"], r["role"], r["name"])
        b = best.get(key)
        if b is None:
            r["rounds"] = [r.get("rps")]
            best[key] = r
        else:
            b["rounds"].append(r.get("rps"))
            if (r.get("rps") or 0) > (b.get("rps") or 0):
                r["rounds"] = b["rounds"]
                best[key] = r
    hello = list(best.values())
    for r in hello:
        got = [x for x in r["rounds"] if x]
        r["spread"] = (max(got) - min(got)) / max(got) if len(got) > 1 else None

    out = []
    w = out.append
    w("# Benchmarks\n")
    w("> Generated by `bench/run.sh`; do not edit by hand (run it again). Numbers from one run on one")
    w("> machine: compare rows *within* a table, not with numbers from elsewhere.\n")
    try:
        # The 1-minute averages before and after: the 5- and 15-minute ones remember the past.
        loads = [float(meta.get(k, "").split()[0]) for k in ("load_before", "load_after")]
    except (ValueError, IndexError):
        loads = []
    if loads and max(loads) > 2 * int(meta.get("nproc", "1") or 1):
        w(f"> **Warning: a busy machine.** The 1-minute load average was {loads[0]:.1f} before and {loads[-1]:.1f} after this run on {meta.get('nproc')} CPUs:")
        w("> other work was competing for the cores, absolute numbers are low and noisy (see *worst")
        w("> round*), and only big ratios between neighbouring rows mean much. Rerun on a quiet machine.\n")
    w("## Machine\n")
    w(f"- CPUs: {meta.get('nproc')} × {meta.get('cpu')}")
    w(f"- kernel: {meta.get('kernel')}")
    w(f"- {meta.get('rustc')}; {meta.get('python')}; {meta.get('wrk')}; nginx {meta.get('nginx')}")
    w(f"- date: {meta.get('date')}, commit {meta.get('commit')}")
    w("- load generator and server share the same cores (loopback only): wrk's two threads compete with")
    w("  the server for the CPUs, as they would on any one-machine benchmark.")
    autogroup = meta.get("autogroup") or read_autogroup()
    if autogroup == "1":
        w("- the kernel's autogroup scheduling is on (`/proc/sys/kernel/sched_autogroup_enabled` = 1), and")
        w("  every server runs in a session of its own (`setsid`), so when both are busy the server's")
        w("  threads *together* get about the same CPU time as wrk's: a server cannot buy CPU with more")
        w("  threads, and more runnable threads than cores only add context switches. That is why the")
        w("  pool runs with as many threads as there are cores here (measured with `wrk -c32`,")
        w("  `Connection: close`, under `setsid`: 2 threads 53.0k req/s, 4 threads 43.8k, nginx 52.9k;")
        w("  without `setsid`, 4 threads got 55-57k), and why nginx runs one worker per core.")
    elif autogroup == "0":
        w("- the kernel's autogroup scheduling is off: the server's threads and wrk's share the CPUs")
        w("  thread by thread, so a server with more runnable threads gets more CPU time.")
    w(f"- load average (1, 5, 15 min) before the run: {meta.get('load_before')}; after: {meta.get('load_after')}.")
    w("  Anything above ~0.5 before the run means other work shared the cores: trust ratios between")
    w("  neighbouring rows more than absolute numbers, and rerun on a quiet machine for figures to quote.\n")

    secs, conns = meta.get("bench_secs"), meta.get("conns")
    w("## What was run\n")
    w("```sh")
    settings = " ".join(
        f"{env}={meta.get(key)}"
        for env, key in [
            ("BENCH_SECS", "bench_secs"),
            ("ROUNDS", "rounds"),
            ("POOL_THREADS", "pool_threads"),
            ("PREFORK_WORKERS", "prefork_workers"),
            ("BURST_MAX_SECS", "burst_max_secs"),
        ]
        if meta.get(key)
    )
    w(f"{settings} bench/run.sh")
    w("# every server: <server> --port 0 --quiet   (port read from its banner line), then")
    w(f"wrk -t2 -c{conns} -d{secs}s --latency http://127.0.0.1:PORT/hello                           # keep-alive")
    w(f"wrk -t2 -c{conns} -d{secs}s --latency -H 'Connection: close' http://127.0.0.1:PORT/hello    # a connection per request")
    w("target/release/examples/client -n N http://127.0.0.1:PORT/delay?s=1                         # burst, N = 100, 1000")
    w("```\n")
    w("Servers, per model: **socketserver** is the example server (`examples/<model>_server.rs`, release build);")
    w("**minimal** is the hand-written server of the same model in `bench/minimal/` (std + libc, no")
    w("validation, no timeouts, no graceful shutdown, same `/hello` response bytes): the model's limit;")
    w("**Python** is the standard library twin in `bench/python/twins.py` (`http.server` with")
    w("`protocol_version = \"HTTP/1.1\"`, and two departures from stdlib defaults that socketserver makes too:")
    w("`TCP_NODELAY` and a backlog of `SOMAXCONN` instead of 5; see the file for what the defaults cost).")
    w("nginx (`bench/nginx/nginx.conf`, 2 workers, `return 200`) is the reference for every model.")
    w(f"The forking servers run with `--max-children 1000`; pool servers with {meta.get('pool_threads')} threads;")
    w(f"prefork servers with {meta.get('prefork_workers')} workers (prefork_server threads: {meta.get('prefork_threads')}).")
    w("Each server is started fresh for each measurement; the servers of a model run back to back,")
    w(f"and the whole wrk matrix is measured {meta.get('rounds')} times in that order (ours, minimal, Python, ..., then")
    w("again). The tables show each server's best round (interference only slows a run down) and,")
    w("under *worst round*, how much slower its worst round was: a large figure means a noisy row.\n")
    w("**Peak RSS** is sampled every 0.25 s by `bench/rss.py`: the largest sum of `VmHWM` over the live")
    w("processes of the server's process group (server, children, workers). It counts pages shared")
    w("between processes once per process (as `ps` does), so for forking models it is an upper bound,")
    w("and it misses a child that lived less than one sampling interval.\n")
    w("**Errors** are wrk's socket errors (connect, read, write, timeout) plus non-2xx responses.")
    w("A sequential server, the minimal pool, and prefork's sync workers, when they have fewer workers")
    w("than wrk has connections, serve one keep-alive connection per worker to completion, so the other")
    w("connections wait unanswered for the whole run: the req/s is what the served connections")
    w("achieved. That is the model. socketserver's `Pool` is a different policy (gunicorn's gthread):")
    w("it parks idle keep-alive connections and makes busy ones take turns, so all of wrk's")
    w("connections are served, by as many threads as there are cores. Its keep-alive ratio to")
    w("`min_pool` compares the two policies, not the same model with and without overhead.\n")

    w("**Stalls.** `bench/stall.py` watches for moments when the machine stops running us for more")
    w("than 0.2 s (a virtual machine's host pausing it, or other work taking the cores). A measurement a")
    w(f"stall overlapped is repeated (up to {meta.get('attempts')} times for wrk, twice for a burst); a row marked ⚠")
    w("was overlapped by a stall in every attempt and is less trustworthy.\n")
    for n in notes:
        w(f"- note: {n}")
    if notes:
        w("")

    def find(mode, model, role):
        return next((r for r in hello if r["mode"] == mode and r["model"] == model and r["role"] == role), None)

    for mode, title in [("keepalive", "`/hello`, keep-alive"), ("close", "`/hello`, `Connection: close` (a new connection per request)")]:
        rows = [r for r in hello if r["mode"] == mode]
        if not rows:
            continue
        nginx = find(mode, "reference", "reference")
        w(f"## {title}\n")
        w(f"![req/s per server, {title}](img/bench-{mode}.svg)\n")
        w("| model | server | req/s | worst round | p50 ms | p99 ms | errors | peak RSS | ÷ minimal | ÷ Python | ÷ nginx |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        rows.sort(key=lambda r: (MODELS.index(r["model"]), ROLE_ORDER[r["role"]]))
        for r in rows:
            mn, py = find(mode, r["model"], "minimal"), find(mode, r["model"], "python")
            label = row_label(r)
            if r["failed"]:
                w(f"| {r['model']} | {label} | did not start | | | | | | | | |")
                continue
            w(
                f"| {r['model']} | {label} | {num(r['rps'])} | {spread(r)} | {num(r['p50'], '{:.2f}')} | {num(r['p99'], '{:.2f}')} "
                f"| {num(r['errors'])} | {mib(r['rss'])} | {ratio(r['rps'], mn and mn['rps'])} "
                f"| {ratio(r['rps'], py and py['rps'])} | {ratio(r['rps'], nginx and nginx['rps'])} |"
            )
        w("")

    if bursts:
        w("## Bursts: N concurrent `/delay?s=1` (the bundled client)\n")
        w("Every request sleeps 1 s on the server, so the ideal wall time is 1 s whatever N is; a model")
        w(f"that answers C at a time needs about N / C seconds. A burst that would take more than")
        w(f"{meta.get('burst_max_secs')} s by that arithmetic is skipped (sequential servers: N × 1 s).\n")
        w("![wall time per server for each burst](img/bench-bursts.svg)\n")
        w("| N | model | server | wall s | answered | errors | peak RSS |")
        w("|---:|---|---|---:|---:|---|---:|")
        bursts.sort(key=lambda r: (r["n"], MODELS.index(r["model"]), ROLE_ORDER[r["role"]]))
        for r in bursts:
            label = row_label(r)
            if r["skip"]:
                w(f"| {r['n']} | {r['model']} | {label} | {r['skip']} | | | |")
                continue
            ans = "–" if r["answered"] is None else f"{r['answered']} of {r['of']}"
            w(f"| {r['n']} | {r['model']} | {label} | {num(r['wall'], '{:.2f}')} | {ans} | {r['errors'] or '0'} | {mib(r['rss'])} |")
        w("")

    w("## What the numbers teach\n")
    w("- **The model sets the ceiling, the code decides how close you get.** Each minimal server is")
    w("  the fastest that model can be made with blocking I/O; the `÷ minimal` column is what")
    w("  socketserver's validation, limits, timeouts and shutdown handling cost on top of the model.")
    w("- **A sequential server serves one connection at a time.** With keep-alive, one wrk connection")
    w("  owns it for the whole run and the others wait; its throughput is one client's round trips.")
    w("  Bursts of slow requests queue up: N requests take N × the delay.")
    w("- **Keep-alive versus a connection per request** measures the cost of `accept` + setup +")
    w("  teardown: for thread- and process-per-connection models that is a thread spawn or a")
    w("  `fork()` per request, which is why the close table is slower for them, and most for forking.")
    w("- **Slow requests want concurrency, not speed.** In the bursts the threaded and forking models")
    w("  finish N one-second requests in about one second; a fixed pool needs N / size seconds.")
    w("  The memory column shows the price: a thread costs a stack, a process costs a whole address")
    w("  space (mostly shared, which the RSS sum over-counts).")
    w("- **Python's twins** pay for the interpreter on every request, and ForkingMixIn forks a whole")
    w("  interpreter per connection. (Their stdlib defaults would cost far more than the interpreter:")
    w("  Nagle's algorithm stalls each keep-alive response ~40 ms, and a listen backlog of 5 makes")
    w("  bursts wait for SYN retransmits; the twins switch both off, see `bench/python/twins.py`.)")
    w("- **nginx** is event-driven (a few processes, no thread or process per connection) and")
    w("  tuned for this; it is the reference for what the machine can do, not a model to beat here.")
    w("")
    w("Auto-filled from this run:\n")
    for mode, label in [("keepalive", "keep-alive"), ("close", "Connection: close")]:
        for model in MODELS[:-1]:
            o, mn = find(mode, model, "ours"), find(mode, model, "minimal")
            py, ng = find(mode, model, "python"), find(mode, "reference", "reference")
            if o and mn and o["rps"] and mn["rps"]:
                extra = ""
                if py and py["rps"]:
                    extra += f", {o['rps'] / py['rps']:.1f}× its Python twin"
                if ng and ng["rps"]:
                    extra += f", {o['rps'] / ng['rps']:.2f}× nginx"
                w(f"- {label}, {model}: socketserver does {o['rps']:,.0f} req/s, "
                  f"{100 * o['rps'] / mn['rps']:.0f}% of the minimal server's {mn['rps']:,.0f}{extra}.")
    for n in sorted({b["n"] for b in bursts}):
        done = [b for b in bursts if b["n"] == n and b.get("wall")]
        if done:
            best = min(done, key=lambda b: b["wall"])
            worst = max(done, key=lambda b: b["wall"])
            w(f"- burst of {n}: fastest {best['name']} ({best['wall']:.2f} s), slowest {worst['name']} ({worst['wall']:.2f} s).")
    print("\n".join(out))
    write_charts(charts(hello, bursts), img_dir())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--charts-from":
        with open(sys.argv[2]) as f:
            write_charts(charts(*rows_from_markdown(f.read())), sys.argv[3])
    else:
        main()
