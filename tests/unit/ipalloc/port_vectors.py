"""Regenerate ``vectors/*.json`` from ctdb/tests/UNIT/takeover/*.sh (samba-4.17.12).

Not a test module: run it by hand against a Samba git directory, e.g.

    python tests/unit/ipalloc/port_vectors.py /path/to/samba.git [samba-4.17.12]

Each upstream ``NAME.sh`` becomes ``vectors/NAME.json``, holding every
``simple_test`` invocation of the file (some files chain several) with the shell
environment at that point, the node-state argument, the stdin lines and the
``required_result`` lines split into the log lines (``${TEST_DATE_STAMP}…``) and
the allocation lines.  ``$_out`` (the previous run's output, as
ctdb/tests/scripts/unit.sh sets it) is replaced by the previous expected
allocation, which is what upstream feeds in when the previous step passes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
STAMP = "${TEST_DATE_STAMP}"


def _show(gitdir: str, rev: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", gitdir, "show", f"{rev}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def convert(text: str, name: str, tag: str) -> dict:
    lines = text.splitlines()
    env: dict[str, str] = {}
    description = None
    runs = []
    required: list[str] | None = None
    prev_expected: list[str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r'define_test "(.*)"', line)
        if m:
            description = m.group(1)
        m = re.match(r"export (\w+)=(.*)$", line)
        if m:
            env[m.group(1)] = m.group(2)
        if line.startswith("required_result <<EOF"):
            required = []
            i += 1
            while lines[i] != "EOF":
                required.append(lines[i])
                i += 1
        m = re.match(r"simple_test (\S+)( multi)? <<EOF", line)
        if m:
            body = []
            i += 1
            while lines[i] != "EOF":
                body.append(lines[i])
                i += 1
            from_previous = body == ["$_out"]
            if from_previous:
                assert prev_expected is not None
                body = list(prev_expected)
            assert required is not None, name
            log = [r[len(STAMP):] for r in required if r.startswith(STAMP)]
            expected = [r for r in required if not r.startswith(STAMP)]
            runs.append({
                "nodestates": m.group(1),
                "multi": bool(m.group(2)),
                "env": {k: v for k, v in env.items() if k != "CTDB_TEST_LOGLEVEL"},
                "loglevel": env.get("CTDB_TEST_LOGLEVEL"),
                "input_from_previous_output": from_previous,
                "input": body,
                "expected_log": log,
                "expected": expected,
            })
            prev_expected = expected
            required = None
        i += 1
    return {
        "upstream": f"ctdb/tests/UNIT/takeover/{name}.sh",
        "tag": tag,
        "algorithm": name.split(".")[0],
        "description": description,
        "runs": runs,
    }


def main(argv: list[str]) -> None:
    gitdir = argv[1]
    tag = argv[2] if len(argv) > 2 else "samba-4.17.12"
    names = subprocess.run(["git", "--git-dir", gitdir, "ls-tree", "--name-only", tag,
                            "ctdb/tests/UNIT/takeover/"], check=True, capture_output=True,
                           text=True).stdout.split()
    out = HERE / "vectors"
    out.mkdir(exist_ok=True)
    for path in names:
        if not path.endswith(".sh"):
            continue
        name = Path(path).name[:-3]
        data = convert(_show(gitdir, tag, path), name, tag)
        (out / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(name, len(data["runs"]))


if __name__ == "__main__":
    main(sys.argv)
