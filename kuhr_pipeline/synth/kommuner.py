"""Real kommune numbers with their renumbering, for synthetic residence and practice kommuner.

Each kommune is a list of (first year, number): Bærum is 0219 before 2020, 3024 in 2020–2023 and
3201 from 2024, as in SSB Klass classification 131. Trondheim became 5001 with the Trøndelag merger
of 2018; Ålesund 1504 → 1507 (2020) → 1508 (2024, when Haram split off). Weights are rounded
populations (thousands, 2024). Oslo claims sometimes carry a bydel code (0312–0335) instead of
0301, as KUHR receives them.
"""

from __future__ import annotations

import numpy as np

#                     name            weight  numbering over time
KOMMUNER: list[tuple[str, int, list[tuple[int, str]]]] = [
    ("Oslo", 717, [(0, "0301")]),
    ("Bergen", 291, [(0, "1201"), (2020, "4601")]),
    ("Trondheim", 214, [(0, "1601"), (2018, "5001")]),
    ("Stavanger", 149, [(0, "1103")]),
    ("Bærum", 131, [(0, "0219"), (2020, "3024"), (2024, "3201")]),
    ("Kristiansand", 116, [(0, "1001"), (2020, "4204")]),
    ("Drammen", 103, [(0, "0602"), (2020, "3005"), (2024, "3301")]),
    ("Asker", 98, [(0, "0220"), (2020, "3025"), (2024, "3203")]),
    ("Lillestrøm", 92, [(0, "0231"), (2020, "3030"), (2024, "3205")]),
    ("Fredrikstad", 85, [(0, "0106"), (2020, "3004"), (2024, "3107")]),
    ("Sandnes", 83, [(0, "1102"), (2020, "1108")]),
    ("Tromsø", 78, [(0, "1902"), (2020, "5401"), (2024, "5501")]),
    ("Ålesund", 58, [(0, "1504"), (2020, "1507"), (2024, "1508")]),
    ("Sarpsborg", 58, [(0, "0105"), (2020, "3003"), (2024, "3105")]),
    ("Tønsberg", 58, [(0, "0704"), (2020, "3803"), (2024, "3905")]),
    ("Skien", 56, [(0, "0806"), (2020, "3807"), (2024, "4003")]),
    ("Bodø", 53, [(0, "1804")]),
    ("Moss", 51, [(0, "0104"), (2020, "3002"), (2024, "3103")]),
    ("Larvik", 48, [(0, "0709"), (2018, "0712"), (2020, "3805"), (2024, "3909")]),
    ("Arendal", 46, [(0, "0906"), (2020, "4203")]),
    ("Nordre Follo", 63, [(0, "0213"), (2020, "3020"), (2024, "3207")]),
    ("Hamar", 33, [(0, "0403"), (2020, "3403")]),
    ("Haugesund", 38, [(0, "1106")]),
    ("Halden", 31, [(0, "0101"), (2020, "3001"), (2024, "3101")]),
    ("Molde", 33, [(0, "1502"), (2020, "1506")]),
    ("Lillehammer", 29, [(0, "0501"), (2020, "3405")]),
    ("Gjøvik", 31, [(0, "0502"), (2020, "3407")]),
    ("Harstad", 25, [(0, "1901"), (2013, "1903"), (2020, "5402"), (2024, "5503")]),
    ("Alta", 21, [(0, "2012"), (2020, "5403"), (2024, "5601")]),
]

OSLO_INDEX = 0
OSLO_BYDELER = [f"03{n:02d}" for n in range(12, 36)]


def weights() -> np.ndarray:
    w = np.array([k[1] for k in KOMMUNER], dtype=np.float64)
    return w / w.sum()


def numbers_in(year: int) -> np.ndarray:
    """The kommune number of each kommune (by index) in force in `year`."""
    return np.array([[n for first, n in history if first <= year][-1] for _, _, history in KOMMUNER], dtype=object)
