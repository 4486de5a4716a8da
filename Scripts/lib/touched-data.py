#!/usr/bin/env python3
"""Prints the data symbols of BINARY that the runs traced in TRACE... touched, first touch first.

Each TRACE is the log of `valgrind --tool=lackey --trace-mem=yes` (" L addr,size" and " S addr,size"
lines). Only addresses in the binary's writable sections count (.data, .bss and the like: read-only
data and text are packed by the function list already). Used by Scripts/order.sh.
"""
import bisect
import re
import subprocess
import sys


def writable_ranges(binary):
    ranges = []
    headers = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout
    for line in headers.splitlines():
        match = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\S+\s+(\S+)", line)
        if match and int(match.group(2), 16) and "W" in match.group(4):
            start = int(match.group(2), 16)
            ranges.append((start, start + int(match.group(3), 16)))
    return ranges


def data_symbols(binary):
    symbols = []
    listing = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "bBdDvV":
            symbols.append((int(fields[0], 16), max(int(fields[1], 16), 1), fields[3]))
    symbols.sort()
    return symbols


def main():
    binary, traces = sys.argv[1], sys.argv[2:]
    ranges = writable_ranges(binary)
    low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
    symbols = data_symbols(binary)
    starts = [s[0] for s in symbols]
    seen = set()
    for trace in traces:
        with open(trace) as lines:
            for line in lines:
                if len(line) < 4 or line[0] != " " or line[1] not in "LSM":
                    continue
                address = int(line[3:].split(",", 1)[0], 16)
                if not low <= address < high:
                    continue
                at = bisect.bisect_right(starts, address) - 1
                if at < 0:
                    continue
                start, size, name = symbols[at]
                if address < start + size and name not in seen:
                    seen.add(name)
                    print(name)


if __name__ == "__main__":
    main()
