"""The synthetic register's code tables: practice types, diagnoses, fee codes and amounts.

Sources (see docs/synthetic-data.md): Helsedirektoratet's Allmennlegetjenesten 2023 and SSB for
volumes (3.0 fastlege consultations per person a year, legevakt 0.23); SSB's GP diagnosis shares
2023 (psychological 12.2 %, respiratory infections 8.6 %, local pain 7.8 % …); FHI's syndromic
codes (R74/R78/R80 peak in winter); HELFO's tariff for fee codes and egenandel (170 NOK day, 288
evening in 2024; frikort ceiling 3 165 NOK in 2024).
"""

from __future__ import annotations

import numpy as np

# practice type, code system, specialty, yearly contacts per person by age band
# age bands:        0-4   5-15  16-44 45-66 67-79 80+
AGE_BANDS = np.array([0, 5, 16, 45, 67, 80])
PRACTICE_TYPES: list[tuple[str, str | None, str | None, list[float]]] = [
    ("FALE", "ICPC-2", "allmennmedisin", [3.6, 1.6, 2.4, 3.3, 4.8, 6.5]),
    ("FALO", "ICPC-2", "allmennmedisin", [0.08, 0.04, 0.06, 0.08, 0.1, 0.14]),
    ("LEVA", "ICPC-2", "allmennmedisin", [0.45, 0.2, 0.22, 0.18, 0.22, 0.35]),
    ("LEKO", "ICPC-2", "allmennmedisin", [0.08, 0.04, 0.04, 0.03, 0.04, 0.06]),
    ("FYNO", "ICPC-2", None, [0.02, 0.1, 0.5, 0.9, 0.9, 0.6]),
    ("KINO", "ICPC-2", None, [0.0, 0.02, 0.2, 0.25, 0.12, 0.05]),
    ("PSNO", "ICD-10", None, [0.0, 0.06, 0.25, 0.12, 0.02, 0.0]),
    ("SPON", "ICD-10", "øre-nese-hals", [0.2, 0.1, 0.06, 0.08, 0.12, 0.12]),
    ("SPOL", "ICD-10", "øyesykdommer", [0.05, 0.08, 0.06, 0.12, 0.35, 0.45]),
    ("SPHU", "ICD-10", "hudsykdommer", [0.04, 0.04, 0.08, 0.1, 0.12, 0.1]),
    ("SPPS", "ICD-10", "psykiatri", [0.0, 0.02, 0.12, 0.08, 0.02, 0.01]),
    ("SPIN", "ICD-10", "indremedisin", [0.0, 0.01, 0.04, 0.12, 0.2, 0.2]),
    ("SPGY", "ICD-10", "gynekologi", [0.0, 0.0, 0.16, 0.1, 0.04, 0.02]),
    ("LARO", None, None, [0.02, 0.05, 0.25, 0.45, 0.6, 0.5]),
    ("SYKE", "ICD-10", None, [0.15, 0.08, 0.15, 0.3, 0.5, 0.6]),
]

ICPC_SYSTEM_TYPES = {"FALE", "FALO", "LEVA", "LEKO", "FYNO", "KINO"}

# ICPC-2 codes with weights shaped like SSB's GP diagnosis shares; the `winter` ones peak Dec-Feb.
ICPC_CODES: list[tuple[str, float, bool]] = [
    ("P74", 3.5, False),
    ("P76", 3.2, False),
    ("P02", 1.8, False),
    ("P06", 1.2, False),
    ("P81", 1.0, False),
    ("P29", 1.5, False),
    ("R74", 3.0, True),
    ("R78", 1.6, True),
    ("R80", 1.2, True),
    ("R05", 1.4, True),
    ("R75", 0.8, True),
    ("R83", 0.6, True),
    ("R991", 0.4, True),
    ("L03", 2.0, False),
    ("L84", 1.6, False),
    ("L86", 1.0, False),
    ("L92", 1.2, False),
    ("L01", 1.0, False),
    ("L02", 1.0, False),
    ("D11", 0.8, True),
    ("D70", 0.5, True),
    ("D73", 0.7, True),
    ("D93", 1.3, False),
    ("D84", 0.8, False),
    ("K86", 3.4, False),
    ("K74", 0.8, False),
    ("K78", 0.6, False),
    ("A97", 1.6, False),
    ("A98", 1.7, False),
    ("A29", 0.8, False),
    ("A99", 0.6, False),
    ("A04", 1.0, False),
    ("R96", 2.0, False),
    ("S87", 1.1, False),
    ("S88", 0.8, False),
    ("W78", 3.1, False),
    ("W11", 0.6, False),
    ("T90", 2.7, False),
    ("T93", 1.0, False),
    ("T86", 0.9, False),
    ("S18", 1.2, False),
    ("L77", 0.9, False),
    ("N01", 1.4, False),
    ("N89", 0.6, False),
    ("U71", 1.2, False),
    ("H71", 1.1, True),
    ("F70", 0.6, False),
    ("X11", 0.7, False),
    ("Y85", 0.5, False),
    ("Z09", 0.5, False),
    ("A45", 2.6, False),
]

ICD_CODES: list[tuple[str, float, bool]] = [
    ("F321", 3.0, False),
    ("F411", 2.5, False),
    ("F431", 1.5, False),
    ("F900", 1.2, False),
    ("F200", 0.4, False),
    ("M545", 2.0, False),
    ("M170", 1.0, False),
    ("M751", 1.0, False),
    ("J069", 1.5, True),
    ("J301", 1.0, False),
    ("J45", 1.0, False),
    ("H660", 1.2, True),
    ("J352", 0.6, False),
    ("H521", 1.5, False),
    ("H251", 1.2, False),
    ("H401", 0.8, False),
    ("L400", 1.0, False),
    ("L209", 1.0, False),
    ("C449", 0.6, False),
    ("D229", 0.8, False),
    ("I10", 1.5, False),
    ("I480", 0.8, False),
    ("E119", 1.2, False),
    ("E039", 0.6, False),
    ("N951", 0.8, False),
    ("O800", 0.4, False),
    ("Z000", 0.8, False),
    ("R100", 0.5, False),
    ("K219", 0.6, False),
]

# Fee codes: day, evening, e-consultation, home visit, simple contact; by practice group.
GP_FEES_DAY = ["2ad"]
GP_FEES_EVENING = ["2ak"]
GP_E_CONSULTATION = "2ae"
GP_HOME_VISIT = ("11ad", "11ak")
GP_SIMPLE = ("1bd", "1ad", "1g")
GP_TIME_SUPPLEMENT = "2cd"
PHYSIO_FEES = ["A1a", "A1d", "A3a", "A2a"]
CHIRO_FEES = ["K1a", "K2a"]
PSYCH_FEES = ["P1", "P2", "P3"]
SPECIALIST_FEES = ["201a", "201b", "203", "212b"]
LAB_FEES = ["701a", "702a", "705k", "706a"]

# (egenandel day, egenandel evening, simple contact, frikort ceiling) by year; 2022–2024 from HELFO,
# earlier years scaled back with the consumer price index, later ones carried forward.
_EGENANDEL = {
    2022: (160, 283, 56, 2921),
    2023: (167, 283, 61, 3040),
    2024: (170, 288, 61, 3165),
    2025: (175, 295, 63, 3278),
    2026: (180, 302, 65, 3380),
}


def egenandel_for(year: int) -> tuple[float, float, float, float]:
    if year in _EGENANDEL:
        return tuple(float(x) for x in _EGENANDEL[year])  # type: ignore[return-value]
    base_year = 2022 if year < 2022 else 2026
    factor = 0.975 ** (base_year - year) if year < 2022 else 1.025 ** (year - base_year)
    return tuple(round(x * factor) for x in _EGENANDEL[base_year])  # type: ignore[return-value]


# Refund (NOK) per fee code, roughly as in the tariff.
REFUSJON = {
    "2ad": 15.0,
    "2ak": 48.0,
    "2ae": 120.0,
    "11ad": 415.0,
    "11ak": 520.0,
    "1bd": 55.0,
    "1ad": 70.0,
    "1g": 40.0,
    "2cd": 96.0,
    "A1a": 310.0,
    "A1d": 290.0,
    "A3a": 120.0,
    "A2a": 210.0,
    "K1a": 150.0,
    "K2a": 110.0,
    "P1": 620.0,
    "P2": 780.0,
    "P3": 940.0,
    "201a": 350.0,
    "201b": 470.0,
    "203": 180.0,
    "212b": 240.0,
    "701a": 61.0,
    "702a": 35.0,
    "705k": 95.0,
    "706a": 45.0,
}

REJECTION_REASONS = [
    ("duplikatregning", 0.35),
    ("kravet er for seint framsett", 0.25),
    ("ulovlig takstkombinasjon", 0.2),
    ("feil takst", 0.1),
    ("pasienten registrert som avdød", 0.05),
    ("feil diagnose", 0.05),
]
