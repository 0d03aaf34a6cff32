#!/usr/bin/env python3
"""Unit checks of bench/report.py's charts on a small fixture (no bench run, no timing):
`python3 bench/test_report.py`. Each chart must be well-formed XML (a real parser,
xml.etree) with one bar per measured row and one label per row."""

import os
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"

FIXTURE = """\
## `/hello`, keep-alive

| model | server | req/s | worst round | p50 ms | p99 ms | errors | peak RSS | ÷ minimal | ÷ Python | ÷ nginx |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| sequential | **sequential_server** | 19,897 | −8% | 0.06 | 0.11 | 0 | 3.1 MiB | 0.99× | 2.13× | 0.10× |
| sequential | min_sequential | 20,045 | −5% | 0.06 | 0.12 | 0 | 2.0 MiB | 1.00× | 2.15× | 0.10× |
| sequential | HTTPServer ⚠ | 9,340 | −2% | 0.10 | 0.21 | 0 | 20.9 MiB | 0.47× | 1.00× | 0.05× |
| pool | **pool_server** | did not start | | | | | | | | |
| reference | nginx | 198,384 | −4% | 0.08 | 4.14 | 0 | 17.9 MiB | – | – | 1.00× |

## `/hello`, `Connection: close` (a new connection per request)

| model | server | req/s | worst round | p50 ms | p99 ms | errors | peak RSS | ÷ minimal | ÷ Python | ÷ nginx |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| threaded | **threaded_server** | 18,700 | −3% | 1.59 | 3.69 | 0 | 5.5 MiB | 0.80× | 6.02× | 0.36× |

## Bursts: N concurrent `/delay?s=1` (the bundled client)

| N | model | server | wall s | answered | errors | peak RSS |
|---:|---|---|---:|---:|---|---:|
| 100 | sequential | **sequential_server** | skipped: about 100 s by the model's arithmetic | | | |
| 100 | threaded | **threaded_server** | 1.01 | 100 of 100 | 0 | 5.8 MiB |
| 1000 | forking | ForkingHTTPServer | 2.33 | 1000 of 1000 | 0 | 11137.7 MiB |

## What the numbers teach
"""


def parse(text):
    return ET.fromstring(text)


def bars(root):
    return [r for r in root.iter(SVG + "rect") if r.get("class", "").startswith("bar ")]


def texts(root):
    return [t.text for t in root.iter(SVG + "text")]


class Charts(unittest.TestCase):
    def setUp(self):
        self.hello, self.bursts = report.rows_from_markdown(FIXTURE)
        self.files = report.charts(self.hello, self.bursts)

    def test_rows_are_read_from_the_tables(self):
        self.assertEqual(len(self.hello), 6)
        self.assertEqual([r["role"] for r in self.hello[:5]], ["ours", "minimal", "python", "ours", "reference"])
        self.assertTrue(self.hello[2]["stall"])
        self.assertTrue(self.hello[3]["failed"])
        self.assertEqual(self.hello[0]["rps"], 19897.0)
        self.assertEqual([b["wall"] for b in self.bursts], [None, 1.01, 2.33])

    def test_one_chart_per_table(self):
        self.assertEqual(sorted(self.files), ["bench-bursts.svg", "bench-close.svg", "bench-keepalive.svg"])

    def test_keepalive_chart(self):
        root = parse(self.files["bench-keepalive.svg"])
        self.assertEqual(root.tag, SVG + "svg")
        got = bars(root)
        # Four measured rows; the pool did not start and shows a text instead of a bar.
        self.assertEqual(len(got), 4)
        self.assertEqual([b.get("class") for b in got], ["bar ours", "bar minimal", "bar python", "bar reference"])
        # Bars are to scale: nginx's is ten times HTTPServer's, within rounding.
        widths = [float(b.get("width")) for b in got]
        self.assertAlmostEqual(widths[3] / widths[2], 198384 / 9340, delta=0.1)
        t = texts(root)
        for label in ["sequential_server", "min_sequential", "HTTPServer ⚠", "pool_server", "did not start", "19,897", "198,384", "sequential", "pool", "nginx, the reference"]:
            self.assertEqual(t.count(label), 1, (label, t))
        self.assertEqual(t.count("nginx"), 2, "its row and its legend key")
        self.assertEqual(t.count("Python"), 1, "the legend key")

    def test_bursts_chart(self):
        root = parse(self.files["bench-bursts.svg"])
        self.assertEqual(len(bars(root)), 2)
        t = texts(root)
        for label in ["N = 100", "N = 1000", "1.01 s", "2.33 s", "skipped: about 100 s by the model's arithmetic"]:
            self.assertEqual(t.count(label), 1, (label, t))
        # nginx has no burst row: no nginx key in the legend.
        self.assertNotIn("nginx", t)

    def test_written_where_asked(self):
        with tempfile.TemporaryDirectory() as d:
            report.write_charts(self.files, d)
            self.assertEqual(sorted(os.listdir(d)), sorted(self.files))


class FromRawOutputs(unittest.TestCase):
    def test_the_report_links_the_charts_it_writes(self):
        wrk = "Running 5s test\n  Latency Distribution\n     50%   60.00us\n     99%  110.00us\n  99485 requests in 5.00s, 1.1MB read\nRequests/sec:  19897.00\n"
        client = "wall time          1.010 s\nanswered           100 of 100\n"
        with tempfile.TemporaryDirectory() as d:
            paths = {}
            for name, text in [("wrk", wrk), ("client", client)]:
                paths[name] = os.path.join(d, name)
                with open(paths[name], "w") as f:
                    f.write(text)
            meta, index, img = os.path.join(d, "meta"), os.path.join(d, "index"), os.path.join(d, "img")
            with open(meta, "w") as f:
                f.write("nproc=2\nbench_secs=5\nconns=32\nburst_max_secs=30\n")
            with open(index, "w") as f:
                f.write(f"hello\tkeepalive\tsequential\tours\tsequential_server\t{paths['wrk']}\t3000\t0\n")
                f.write(f"burst\t100\tthreaded\tours\tthreaded_server\t{paths['client']}\t6000\t0\n")
            out = os.path.join(d, "out.md")
            env = dict(os.environ, BENCH_IMG=img)
            import subprocess
            here = os.path.dirname(os.path.abspath(__file__))
            with open(out, "w") as f:
                subprocess.run([sys.executable, os.path.join(here, "report.py"), meta, index], stdout=f, env=env, check=True)
            md = open(out).read()
            self.assertIn("![req/s per server, `/hello`, keep-alive](img/bench-keepalive.svg)", md)
            self.assertIn("![wall time per server for each burst](img/bench-bursts.svg)", md)
            self.assertIn("| sequential | **sequential_server** | 19,897 |", md)
            self.assertEqual(sorted(os.listdir(img)), ["bench-bursts.svg", "bench-keepalive.svg"])
            root = parse(open(os.path.join(img, "bench-keepalive.svg")).read())
            self.assertEqual(len(bars(root)), 1)


if __name__ == "__main__":
    unittest.main()
