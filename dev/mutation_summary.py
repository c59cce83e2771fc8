"""Per module: mutants, killed, survived, no tests, timeouts — from `mutmut results --all true`
(for dev/MUTATION.md)."""

import re
import subprocess
import sys
from collections import Counter, defaultdict

out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True, text=True)
counts: dict[str, Counter[str]] = defaultdict(Counter)
for line in out.stdout.splitlines():
    found = re.match(r"\s*kuhr_pipeline\.(.+?)\.x[_ǁ].*__mutmut_\d+: (.+)$", line)
    if found:
        counts[found[1]][found[2].strip()] += 1
print("| module | mutants | killed | survived | no tests | timeout | killed of tested |")
print("|---|---:|---:|---:|---:|---:|---:|")
for module, c in sorted(counts.items()):
    tested = c["killed"] + c["survived"] + c["timeout"]
    share = f"{100 * (c['killed'] + c['timeout']) / tested:.0f} %" if tested else "—"
    print(f"| {module} | {sum(c.values())} | {c['killed']} | {c['survived']} | {c['no tests']} | {c['timeout']} | {share} |")
