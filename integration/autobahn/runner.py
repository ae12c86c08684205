"""Autobahn WebSocket conformance cases on Python 3: a runner of our own.

What it is
    The Autobahn testsuite (PyPI `autobahntestsuite`) holds some 500
    WebSocket conformance cases, one Python file each under
    `autobahntestsuite/case/`, and a fuzzing client that runs them against
    a server and gives each a verdict (OK, NON-STRICT, INFORMATIONAL,
    UNIMPLEMENTED, FAILED). The suite runs on Python 2 only. This runner
    runs the suite's own case files on Python 3: it translates them at load
    time (`translate.py`) and drives them with a fuzzing client of ours
    (`fuzzer.py`) that behaves as theirs does, so the verdicts are computed
    by the cases' own code (`Case.onConnectionLost` in `case/case.py`).

    No code of the suite is in this repository: the case files are read
    from the sdist given on the command line (`pip download --no-deps
    autobahntestsuite==25.10.1 -d DIR` fetches it).

    Why not the suite's own client on the modern `autobahn` package? Its
    fuzzing client is Twisted code written against Autobahn 0.10.9, whose
    protocol internals (close bookkeeping, timeouts, `sendFrame`) later
    versions changed, and it would pull Twisted into CI; the cases use a
    small surface, which `fuzzer.py` provides with those 0.10.9 semantics.

Files
    runner.py      this: command line, sdist, one case after another, JSON
    translate.py   Python 2 case files -> Python 3 modules, at import time
    shims.py       what the case files import (autobahn, twisted, ...)
    fuzzer.py      the client protocol object a case drives: life and close
    sender.py      its writing half (`sendFrame`, `sendMessage`, ...)
    receiver.py    its reading half (frames, messages, Close, Ping)
    wire.py        constants, masking, frame headers, opening handshake
    utf8.py        incremental UTF-8 validation

Why
    `integration/tests/autobahn.rs` runs the cases twice, against the test
    app directly and through h2hop-front and h2hop-sidecar, and requires
    the same verdict for every case: the pair must be transparent.

Usage
    python3 -B runner.py --sdist DIR_OR_TARBALL --url ws://127.0.0.1:PORT/ \\
        [--cases '*'] [--exclude '9.*'] [--json OUT.json] [--wirelog]

    Case patterns are the suite's (`1.*`, `6.4.*`, `7.7.1`). Progress goes
    to standard error, one line per case. The JSON file maps each case id
    to its verdict (`behavior`), its close verdict (`behaviorClose`), the
    close code the server sent (`remoteCloseCode`) and what they rest on.
    Exit status: 0 when every case ran; 2 when the runner itself failed (a
    case raised, the server could not be reached, a case outlived
    `--case-timeout`, or the server negotiated permessage-deflate, which
    this runner cannot speak); the JSON file is written either way.

Limits
    Client side only (the suite's fuzzing client, not its fuzzing server),
    no TLS, no permessage-deflate: cases 12.x and 13.x offer it and are
    UNIMPLEMENTED when the server declines, as in the suite.
"""

import argparse
import asyncio
import glob
import json
import os
import re
import sys
import tarfile
import tempfile
import time
import urllib.parse

import fuzzer
import translate


def _package_dir(root):
    """The `autobahntestsuite` package directory under `root`."""
    found = glob.glob(os.path.join(root, "**", "autobahntestsuite", "case", "case.py"), recursive=True)
    if not found:
        raise SystemExit("no autobahntestsuite/case/case.py under %s" % root)
    return os.path.dirname(os.path.dirname(sorted(found, key=len)[0]))


def _unpack(sdist, scratch):
    """The package directory of `sdist`: a directory as is, or a tarball
    (or a directory holding one) unpacked into `scratch`."""
    if os.path.isdir(sdist):
        tarballs = glob.glob(os.path.join(sdist, "autobahntestsuite-*.tar.gz"))
        if not tarballs:
            return _package_dir(sdist)
        sdist = sorted(tarballs)[-1]
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(scratch, filter="data")
        else:
            archive.extractall(scratch)
    return _package_dir(scratch)


def _suite_version(package_dir):
    with open(os.path.join(package_dir, "_version.py")) as version_file:
        found = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", version_file.read())
    return found.group(1) if found else "unknown"


class Run:
    """The cases of one run, one connection after another."""

    def __init__(self, target, user_agent, case_timeout, wirelog):
        self.target = target
        self.user_agent = user_agent
        self.case_timeout = case_timeout
        self.wirelog = wirelog
        self.errors = []

    def _loop_error(self, loop, context):
        # An exception in a case callback or timer: the runner is broken,
        # not the server. Record it; the run stops after this case.
        error = context.get("exception") or context.get("message")
        self.errors.append("%s: %r" % (context.get("message", "error"), error))

    async def case(self, case_id, case_class):
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        client = fuzzer.FuzzingClient(case_class, self.target, self.user_agent, done)
        try:
            await loop.create_connection(lambda: client, self.target.host, self.target.port)
        except OSError as err:
            self.errors.append("case %s: cannot connect: %s" % (case_id, err))
            return None
        guard = False
        try:
            try:
                result = await asyncio.wait_for(asyncio.shield(done), self.case_timeout)
            except asyncio.TimeoutError:
                guard = True
                self.errors.append("case %s: still running after %ss" % (case_id, self.case_timeout))
                client.transport.abort()
                result = await done
        except Exception as err:
            # The case's own verdict code raised (FuzzingClient.connection_lost).
            self.errors.append("case %s: %r" % (case_id, err))
            return None
        result["guard"] = guard
        if client.runner_error:
            self.errors.append("case %s: %s" % (case_id, client.runner_error))
        if not self.wirelog:
            del result["wirelog"]
        return result

    async def all(self, case_set, case_ids):
        asyncio.get_running_loop().set_exception_handler(self._loop_error)
        results = {}
        for case_id in case_ids:
            result = await self.case(case_id, case_set.CasesById[case_id])
            if result is None:
                break
            results[case_id] = result
            print(
                "%-8s %-14s %-16s %-6s %6d ms"
                % (
                    case_id,
                    result["behavior"],
                    result["behaviorClose"],
                    result["remoteCloseCode"],
                    result["duration"],
                ),
                file=sys.stderr,
                flush=True,
            )
            if self.errors:
                break
        return results


def _target(url):
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "ws" or not parsed.hostname or not parsed.port:
        raise SystemExit("--url must be ws://HOST:PORT/PATH, not %r" % url)
    resource = (parsed.path or "/") + ("?" + parsed.query if parsed.query else "")
    return fuzzer.Target(parsed.hostname, parsed.port, resource)


def main():
    parser = argparse.ArgumentParser(description="Runs Autobahn's WebSocket cases.")
    parser.add_argument("--sdist", required=True, help="autobahntestsuite sdist: tarball or dir")
    parser.add_argument("--url", required=True, help="ws://HOST:PORT/PATH of the server")
    parser.add_argument("--cases", default="*", help="comma-separated case patterns")
    parser.add_argument("--exclude", default="", help="comma-separated case patterns")
    parser.add_argument("--json", help="where to write the results")
    parser.add_argument("--case-timeout", type=float, default=60, help="seconds per case")
    parser.add_argument("--wirelog", action="store_true", help="keep each case's frame log")
    args = parser.parse_args()
    target = _target(args.url)

    with tempfile.TemporaryDirectory(prefix="autobahn-sdist-") as scratch:
        package_dir = _unpack(args.sdist, scratch)
        version = _suite_version(package_dir)
        cases, case_set_class = translate.load_cases(package_dir)
        case_set = case_set_class(
            cases.CaseSetname,
            cases.CaseBasename,
            cases.Cases,
            cases.CaseCategories,
            cases.CaseSubCategories,
        )
        spec = {"cases": [p for p in args.cases.split(",") if p]}
        if args.exclude:
            spec["exclude-cases"] = [p for p in args.exclude.split(",") if p]
        case_ids = case_set.parseSpecCases(spec)
        run = Run(target, "AutobahnTestSuite/%s-h2hop-runner" % version, args.case_timeout, args.wirelog)
        started = time.monotonic()
        results = asyncio.run(run.all(case_set, case_ids))

    report = {
        "suite": "autobahntestsuite %s" % version,
        "url": args.url,
        "order": list(results),
        "cases": results,
        "errors": run.errors,
        "seconds": round(time.monotonic() - started, 1),
    }
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=1, sort_keys=True)
    counts = {}
    for result in results.values():
        counts[result["behavior"]] = counts.get(result["behavior"], 0) + 1
    print("%d of %d cases in %.1fs: %s" % (len(results), len(case_ids), report["seconds"], counts), file=sys.stderr)
    for error in run.errors:
        print("runner error: %s" % error, file=sys.stderr)
    return 2 if run.errors or len(results) != len(case_ids) else 0


if __name__ == "__main__":
    sys.exit(main())
