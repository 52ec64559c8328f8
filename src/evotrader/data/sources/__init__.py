"""Bar sources. Each module turns one origin of data into frames satisfying the bars contract.

- ``embedded``: real daily/hourly bars shipped inside installed pip packages (offline).
- ``sp500``: skfolio's bundled daily closes of 20 S&P 500 stocks (offline, close-only).
- ``synthetic``: seeded generators with known regimes and planted, learnable signals.
- ``yahoo``: Yahoo Finance downloads through ``yfinance``, cached as Parquet.
- ``files``: user CSV / Parquet files.

Use :func:`evotrader.data.load_bars` rather than these modules directly: it also slices by date
and re-validates.
"""
