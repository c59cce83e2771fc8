"""The naive script a data manager would write today with pandas: read everything, filter, hash
each row with hashlib, to_parquet. Same cohort rule as the benchmark application."""

from __future__ import annotations

import hashlib
import sys

import pandas as pd


def main(source: str, out: str) -> None:
    df = pd.read_parquet(source)
    df = df[(df["behandlingstidspunkt"] >= "2019-01-01") & (df["behandlingstidspunkt"] < "2025-01-01")]
    df = df[df["pasient_fnr"].notna() & df["pasient_fnr"].str.fullmatch(r"\d{11}")]
    entry = df[df["diagnosekoder"].apply(lambda codes: any(c == "T90"
                                                           for c in codes))]
    counts = entry.groupby("pasient_fnr").size()
    cohort = set(counts[counts >= 3].index)
    df = df[df["pasient_fnr"].isin(cohort)].copy()
    df["pasient_pseudonym"] = df["pasient_fnr"].apply(
        lambda f: hashlib.sha256(b"secret-key" + f.encode()).hexdigest()[:32])
    df["pasient_alder"] = (df["pasient_alder"] // 5 * 5).astype(str)
    df["pasient_bostedskommune"] = df["pasient_bostedskommune"].str[:2]
    df["behandlingstidspunkt"] = df["behandlingstidspunkt"].dt.strftime("%Y-%m")
    columns = ["pasient_pseudonym", "pasient_kjonn", "pasient_alder", "pasient_bostedskommune",
               "behandlingstidspunkt", "behandler_praksistype", "diagnosekoder", "takstkoder", "fritaksgrunn",
               "egenandel", "refusjon"]
    df[columns].to_parquet(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
