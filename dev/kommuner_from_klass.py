"""Write the shipped kommune lists (kuhr_pipeline/catalogue/kommuner/) from SSB Klass downloads.

    python dev/kommuner_from_klass.py KLASS_DIR

KLASS_DIR holds what SSB's Klass API returns, unchanged (see the data folder's README.md):
`Kommuneinndeling YYYY.json` for each version of classification 131 valid from 2006 on, and
`changetables.json` (131's changes from 2006). The script only reshapes them; the facts it adds
by hand are LARGEST_PART (which successor of a divided kommune received most of its people),
RESTORED (a successor that is an older kommune again) and FYLKE_NAMES, with their sources in the
README.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

FIRST_YEAR = 2006
LAST_YEAR = 2025  # the last 1 January the lists cover; raise it at the yearly update
UNSPECIFIED = "9999"  # "Uoppgitt" in 131: not a kommune

# A kommune divided between several: (year, old) → the successor that received most of its people.
LARGEST_PART = {
    (2017, "0720"): "0710",  # Stokke: all but Vear to Sandefjord
    (2020, "1850"): "1875",  # Tysfjord: the western side (Drag) to Hamarøy, Kjøpsvik to Narvik
    (2020, "5012"): "5059",  # Snillfjord: Krokstadøra and the inner fjord to Orkland
    (2024, "1507"): "1508",  # Ålesund: Haram (about 9 000 of 67 000) split off again
}

# A successor of a division that is an older kommune restored: (year, successor) → the old number
# whose land it holds again, so that numbers recorded before the merger go back to it, not to the
# largest part of the divided kommune.
RESTORED = {
    (2024, "1580"): "1534",  # Haram, merged into Ålesund in 2020, again a kommune of its own
}

FYLKE_NAMES = {
    "01": "Østfold", "02": "Akershus", "03": "Oslo", "04": "Hedmark", "05": "Oppland",
    "06": "Buskerud", "07": "Vestfold", "08": "Telemark", "09": "Aust-Agder", "10": "Vest-Agder",
    "11": "Rogaland", "12": "Hordaland", "14": "Sogn og Fjordane", "15": "Møre og Romsdal",
    "16": "Sør-Trøndelag", "17": "Nord-Trøndelag", "18": "Nordland", "19": "Troms", "20": "Finnmark",
    "30": "Viken", "31": "Østfold", "32": "Akershus", "33": "Buskerud", "34": "Innlandet",
    "38": "Vestfold og Telemark", "39": "Vestfold", "40": "Telemark", "42": "Agder", "46": "Vestland",
    "50": "Trøndelag", "54": "Troms og Finnmark", "55": "Troms", "56": "Finnmark",
}  # fmt: skip


def main(klass: Path, out: Path) -> None:
    versions = sorted(
        (int(json.loads(path.read_text())["validFrom"][:4]), path) for path in klass.glob("Kommuneinndeling *.json")
    )
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    names: dict[str, str] = {}
    for i, (year, path) in enumerate(versions):
        until = versions[i + 1][0] - 1 if i + 1 < len(versions) else LAST_YEAR
        if until < FIRST_YEAR:
            continue
        for item in json.loads(path.read_text())["classificationItems"]:
            code = item["code"]
            if code == UNSPECIFIED:
                continue
            first.setdefault(code, max(year, FIRST_YEAR))
            last[code] = until
            names[code] = item["name"]
    with open(out / "kommuner.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["code", "name", "first_year", "last_year"])
        for code in sorted(first):
            writer.writerow([code, names[code], first[code], last[code]])

    fylke_years: dict[str, list[int]] = {}
    for code in first:
        for year in range(first[code], last[code] + 1):
            fylke_years.setdefault(code[:2], []).append(year)
    with open(out / "fylker.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["code", "name", "first_year", "last_year"])
        for fylke in sorted(fylke_years):
            writer.writerow([fylke, FYLKE_NAMES[fylke], min(fylke_years[fylke]), max(fylke_years[fylke])])

    changes = json.loads((klass / "changetables.json").read_text())["codeChanges"]
    rows = sorted(
        {
            (int(c["changeOccurred"][:4]), c["oldCode"], c["newCode"])
            for c in changes
            if FIRST_YEAR < int(c["changeOccurred"][:4]) <= LAST_YEAR and c["changeOccurred"].endswith("-01-01")
        }
    )
    successors: dict[tuple[int, str], list[str]] = {}
    for year, old, new in rows:
        successors.setdefault((year, old), []).append(new)
    with open(out / "changes.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["year", "old_code", "new_code", "largest_part"])
        for year, old, new in rows:
            divided = len(successors[(year, old)]) > 1
            if divided and (year, old) not in LARGEST_PART:
                raise SystemExit(f"{old} was divided in {year}: add its largest successor to LARGEST_PART")
            writer.writerow([year, old, new, "yes" if not divided or LARGEST_PART[(year, old)] == new else "no"])
    with open(out / "restored.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["year", "code", "restores"])
        for (year, code), old in sorted(RESTORED.items()):
            writer.writerow([year, code, old])


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parents[1] / "kuhr_pipeline" / "catalogue" / "kommuner")
