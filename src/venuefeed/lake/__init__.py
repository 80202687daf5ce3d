"""The lake: recordings of venue frames, the Parquet lake's upkeep, queries, books at any instant.

:mod:`~venuefeed.lake.recorder` writes every venue frame (WebSocket and REST)
to compressed, hour-partitioned files; :mod:`~venuefeed.lake.reader` reads them
back in time order (:func:`~venuefeed.lake.reader.iter_frames`), which is what
replay consumes.
"""
