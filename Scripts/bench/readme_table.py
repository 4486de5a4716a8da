"""Puts a bench's latest table into the README between its markers (`<!-- NAME:start -->` and
`<!-- NAME:end -->`), so the README always shows the run the results directory holds."""
import os

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def replace_between_markers(name, markdown):
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    with open(README) as handle:
        readme = handle.read()
    if start not in readme or end not in readme:
        return
    before, rest = readme.split(start, 1)
    _, after = rest.split(end, 1)
    with open(README, "w") as handle:
        handle.write(before + start + markdown + end + after)
