"""Historical series from a folder of CSV files, validated; and the real series bundled with installed
packages written as such a folder (``riim data import series DIR``).

A CSV holds a date column (``date``, ``fecha``, ``timestamp``, ``time``, ``year``… or the first column) and
one or more numeric columns; ``open/high/low/close`` are recognised as OHLC and give a ``spread``
(high − low) column on request. :func:`load_folder` checks every file and returns a report per file:
unparseable dates and duplicated dates are errors (with the offending rows); missing values are filled by
linear interpolation when they are few (at most :data:`MAX_MISSING` of the rows), else an error; gaps
(steps longer than the usual one; weekends do not count for business-day data) are reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.series import SERIES
from training.importers import _atomic_folder
from training.real_photos import MissingDataError

DATE_NAMES = ("date", "fecha", "datetime", "timestamp", "time", "tiempo", "year", "año", "dia", "día", "day")
MAX_MISSING = 0.10
OHLC = ("open", "high", "low", "close")
SHOWN = 10  # offending rows listed in a message


class SeriesDataError(ValueError):
    """The data cannot be used; the message says which file, rows and why."""


@dataclass
class Series:
    name: str
    dates: np.ndarray  # datetime64[ns]
    values: np.ndarray  # float64
    column: str
    report: dict = field(default_factory=dict)


def _rows(index) -> str:
    rows = [int(i) + 2 for i in index[:SHOWN]]  # + header line, 1-based: the row number a spreadsheet shows
    return ", ".join(map(str, rows)) + (" …" if len(index) > SHOWN else "")


def _date_column(frame: pd.DataFrame) -> str:
    for column in frame.columns:
        if str(column).strip().lower() in DATE_NAMES:
            return column
    return frame.columns[0]


def _parse_dates(raw: pd.Series) -> pd.Series:
    text = raw.astype(str).str.strip()
    if text.str.fullmatch(r"\d{4}(\.0)?").all():  # years only (sunspots)
        return pd.to_datetime(text.str.slice(0, 4), format="%Y", errors="coerce")
    return pd.to_datetime(text, errors="coerce", format="mixed")


def _gaps(dates: pd.Series) -> dict:
    """Usual step and the steps longer than it (business-day data: weekends are not gaps)."""
    steps = dates.diff().dropna()
    if steps.empty:
        return {"step": None, "count": 0, "largest": None}
    usual = steps.mode().iloc[0]
    business = usual == pd.Timedelta(days=1) and not (dates.dt.day_of_week >= 5).any()
    if business:
        days = np.busday_count(dates.values[:-1].astype("datetime64[D]"), dates.values[1:].astype("datetime64[D]"))
        long = np.flatnonzero(days > 1)
        largest = int(days.max()) if len(days) else 0
        return {"step": "1 business day", "count": int(len(long)), "largest": f"{largest} business days",
                "first_rows": _rows(long + 1) if len(long) else ""}
    long = np.flatnonzero(steps.values > usual.to_timedelta64() * 1.5)
    return {"step": str(usual), "count": int(len(long)), "largest": str(steps.max()),
            "first_rows": _rows(long + 1) if len(long) else ""}


def read_csv(path: Path, column: str | None = None) -> Series:
    """One validated series from a CSV file (see the module docstring); raises :class:`SeriesDataError`."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise SeriesDataError(f"{path.name}: not a readable CSV file ({error})") from None
    if len(frame.columns) < 2 or frame.empty:
        raise SeriesDataError(f"{path.name}: needs a date column and at least one numeric column with rows")
    date_column = _date_column(frame)
    lower = {str(c).strip().lower(): c for c in frame.columns if c != date_column}
    report = {"file": path.name, "rows": int(len(frame)), "date_column": str(date_column),
              "ohlc": all(name in lower for name in OHLC)}
    wanted = (column or "").lower()
    if not wanted:
        wanted = ("adj_close" if "adj_close" in lower else "close") if report["ohlc"] else None
    if wanted == "spread" and "spread" not in lower and report["ohlc"]:
        values = (pd.to_numeric(frame[lower["high"]], errors="coerce")
                  - pd.to_numeric(frame[lower["low"]], errors="coerce"))
        report["derived"] = "spread = high - low"
    else:
        if wanted is None:
            numeric = [c for c in lower if pd.to_numeric(frame[lower[c]], errors="coerce").notna().any()]
            if len(numeric) != 1:
                raise SeriesDataError(f"{path.name}: several numeric columns ({', '.join(numeric)}); say which with "
                                      "\"columna\" in configuracion.json")
            wanted = numeric[0]
        if wanted not in lower:
            raise SeriesDataError(f"{path.name}: no column {wanted!r}; columns: {', '.join(map(str, frame.columns))}")
        raw = frame[lower[wanted]]
        values = pd.to_numeric(raw, errors="coerce")
        text = raw.astype(str).str.strip()
        bad = np.flatnonzero(values.isna() & raw.notna() & ~text.str.lower().isin(("", "nan", "na", "null")))
        if len(bad):
            raise SeriesDataError(f"{path.name}: {len(bad)} values of {wanted!r} are not numbers (rows {_rows(bad)})")
    report["column"] = wanted
    dates = _parse_dates(frame[date_column])
    bad = np.flatnonzero(dates.isna())
    if len(bad):
        raise SeriesDataError(f"{path.name}: {len(bad)} dates could not be read in column {date_column!r} "
                              f"(rows {_rows(bad)})")
    duplicated = np.flatnonzero(dates.duplicated(keep="first").values)
    if len(duplicated):
        raise SeriesDataError(f"{path.name}: {len(duplicated)} duplicated dates (rows {_rows(duplicated)}), "
                              f"e.g. {dates.iloc[duplicated[0]].date()}")
    report["sorted"] = bool(dates.is_monotonic_increasing)
    order = np.argsort(dates.values, kind="mergesort")
    dates, values = dates.iloc[order].reset_index(drop=True), values.iloc[order].reset_index(drop=True)
    missing = np.flatnonzero(values.isna().values)
    report["missing"] = int(len(missing))
    if len(missing) > MAX_MISSING * len(values) or len(missing) == len(values):
        raise SeriesDataError(f"{path.name}: {len(missing)} of {len(values)} values of {wanted!r} are missing "
                              f"(more than {MAX_MISSING:.0%}; rows {_rows(missing)})")
    if len(missing):
        values = values.interpolate(limit_direction="both")
        report["filled"] = f"{len(missing)} missing values filled by linear interpolation"
    report["gaps"] = _gaps(dates)
    report.update(start=str(dates.iloc[0].date()), end=str(dates.iloc[-1].date()))
    return Series(path.stem, dates.values.astype("datetime64[ns]"), values.to_numpy(np.float64), wanted, report)


def load_folder(path: str | Path, column: str | None = None) -> list[Series]:
    """Every ``*.csv`` of a folder (or one CSV file), validated; raises :class:`SeriesDataError` listing
    every file's problem."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.glob("*.csv")) if path.is_dir() else []
    if not files:
        raise SeriesDataError(f"{path}: no CSV files found (ruta_datos must be a folder of .csv files or one .csv)")
    found, problems = [], []
    for file in files:
        try:
            found.append(read_csv(file, column))
        except SeriesDataError as error:
            problems.append(str(error))
    if problems:
        raise SeriesDataError("\n".join(problems))
    return found


# --- real series from installed packages ---------------------------------------------------------------

def _msft_pmdarima() -> pd.DataFrame:
    try:
        from pmdarima.datasets import load_msft
    except ImportError:
        raise MissingDataError("pmdarima is not installed: pip install pmdarima (the series extra)") from None
    frame = load_msft()
    frame.columns = [c.lower() for c in frame.columns]
    return frame[["date", "open", "high", "low", "close", "volume"]]


def _bokeh_stock(ticker: str) -> pd.DataFrame:
    try:
        from bokeh_sampledata import stocks
    except ImportError:
        raise MissingDataError("bokeh-sampledata is not installed: pip install bokeh-sampledata") from None
    return pd.DataFrame(getattr(stocks, ticker))[["date", "open", "high", "low", "close", "adj_close", "volume"]]


def _statsmodels(name: str) -> pd.DataFrame:
    try:
        from statsmodels import datasets
    except ImportError:
        raise MissingDataError("statsmodels is not installed: pip install statsmodels") from None
    data = getattr(datasets, name).load_pandas().data
    if name == "co2":  # weekly, 59 missing weeks left empty: the loader reports and fills them
        return pd.DataFrame({"date": data.index.strftime("%Y-%m-%d"), "co2": data["co2"].to_numpy()})
    return pd.DataFrame({"year": data["YEAR"].astype(int), "sunactivity": data["SUNACTIVITY"]})


def _spread(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"date": frame["date"], "spread": frame["high"] - frame["low"]})


SOURCES = {  # folder (models.series.SERIES) → {file stem: (description, loader)}; ruta_datos points at one folder
    "msft": {"msft": ("Microsoft daily OHLC 1986-2017, pmdarima load_msft", _msft_pmdarima)},
    "msft-spread": {"msft-spread": ("Microsoft daily high - low spread, from pmdarima load_msft",
                                    lambda: _spread(_msft_pmdarima()))},
    "stocks": {ticker.lower(): (f"{ticker} daily OHLC 2000-2013, bokeh-sampledata", lambda t=ticker: _bokeh_stock(t))
               for ticker in ("AAPL", "IBM", "MSFT")},
    "co2": {"co2": ("Mauna Loa weekly CO2 (ppm) 1958-2001, statsmodels", lambda: _statsmodels("co2"))},
    "sunspots": {"sunspots": ("Yearly sunspot numbers 1700-2008, statsmodels", lambda: _statsmodels("sunspots"))},
}
assert set(SOURCES) == set(SERIES)


def import_series(dest: str | Path, only: list[str] | None = None) -> dict:
    """Write each source as ``dest/<folder>/<stem>.csv`` (atomically: all or nothing); returns
    ``{folder: {stem: rows}}``."""
    chosen = only or list(SOURCES)
    unknown = sorted(set(chosen) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown series {unknown}; choose from {', '.join(SOURCES)}")
    written: dict = {}
    with _atomic_folder(dest) as staging:
        for folder in chosen:
            (staging / folder).mkdir()
            for stem, (_, loader) in SOURCES[folder].items():
                frame = loader()
                frame.to_csv(staging / folder / f"{stem}.csv", index=False)
                written.setdefault(folder, {})[stem] = int(len(frame))
    return written
