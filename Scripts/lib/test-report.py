#!/usr/bin/env python3
"""Counts what one Swift Testing run proved, from the runner's own event stream.

    test-report.py --label LABEL --list LIST --events EVENTS.jsonl [--filter REGEX] [--skip REGEX]
                   [--totals FILE]

LIST is `swift test list` output: every test function the bundle holds, one specifier per line
("Module.Type/function(label:)"); with --filter, only those the run's --filter selects (the same
regular expression, searched in the specifier, as the runner does), without those --skip names.
EVENTS is the run's
`--event-stream-output-path` file (event stream version 0).

A test passed when it started and ended with no issue other than a known one. Anything else is a
failure: an issue recorded, a skip (skipping is never a pass, whatever the reason: an empty
argument list, a condition, a missing requirement), a test the list holds that the run never
reported, and an issue recorded outside any test (a suite's, or the run's). The summary line is
"LABEL: N passed, N failed", followed by one line per failure; with --totals, "N F" is appended to
FILE for the closing line over all runs. Exits 1 when anything failed or the stream is unreadable.
"""

import argparse
import json
import re
import sys


def specifier(test_id):
    """'Mod.Type/f(_:)/File.swift:12:6' -> 'Mod.Type/f(_:)', as `swift test list` prints it."""
    return re.sub(r"/[^/]+\.swift:\d+:\d+$", "", test_id)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True)
    parser.add_argument("--list", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--filter")
    parser.add_argument("--skip")
    parser.add_argument("--totals")
    args = parser.parse_args()

    with open(args.list, encoding="utf-8") as listing:
        expected = {line.strip() for line in listing if line.strip() and not line.startswith("[")}
    if args.filter:
        expected = {name for name in expected if re.search(args.filter, name)}
    if args.skip:
        expected = {name for name in expected if not re.search(args.skip, name)}

    functions = {}      # test ID -> specifier, for every function the run planned
    suites = set()
    ended, skipped = set(), {}
    issues = {}         # test ID (or "" outside any test) -> messages of unknown issues
    run_ended = False
    try:
        with open(args.events, encoding="utf-8") as stream:
            for number, line in enumerate(stream, 1):
                record = json.loads(line)
                payload = record.get("payload", {})
                if record.get("kind") == "test":
                    if payload.get("kind") == "suite":
                        suites.add(payload["id"])
                    else:
                        functions[payload["id"]] = specifier(payload["id"])
                    continue
                kind = payload.get("kind")
                test_id = payload.get("testID") or ""
                messages = [message.get("text", "") for message in payload.get("messages", [])]
                if kind == "testEnded" and not payload.get("_testCase"):
                    ended.add(test_id)
                elif kind == "testSkipped":
                    skipped[test_id] = " ".join(messages)
                elif kind == "issueRecorded" and not payload.get("issue", {}).get("isKnown", False):
                    issues.setdefault(test_id, []).append(" ".join(messages))
                elif kind == "runEnded":
                    run_ended = True
    except (OSError, ValueError, KeyError) as error:
        print(f"{args.label}: cannot read the event stream {args.events}: {error}")
        return 1

    failures = []
    passed = 0
    reported = set()
    for test_id, name in sorted(functions.items(), key=lambda item: item[1]):
        reported.add(name)
        if name not in expected:
            failures.append(f"{name}: ran, but is not among the {len(expected)} tests the list holds")
        elif test_id in skipped:
            failures.append(f"{name}: SKIPPED ({skipped[test_id]})")
        elif test_id in issues:
            failures.append(f"{name}: {issues[test_id][0]}" + (f" (and {len(issues[test_id]) - 1} more)" if len(issues[test_id]) > 1 else ""))
        elif test_id not in ended:
            failures.append(f"{name}: started but never ended")
        else:
            passed += 1
    for name in sorted(expected - reported):
        failures.append(f"{name}: never ran (the run did not plan it; only Swift Testing tests are counted)")
    for test_id, messages in sorted(issues.items()):
        if test_id not in functions:
            owner = f"suite {test_id}" if test_id in suites else (test_id or "the run itself")
            failures.extend(f"{owner}: {message}" for message in messages)
    if not run_ended:
        failures.append("the event stream has no end of run: the runner did not finish")

    print(f"{args.label}: {passed} passed, {len(failures)} failed")
    for failure in failures:
        print(f"  FAILED {failure}")
    if args.totals:
        with open(args.totals, "a", encoding="utf-8") as totals:
            totals.write(f"{passed} {len(failures)}\n")
    return 1 if failures or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
