"""Where events land: SQL stores, files and event buses behind one contract."""
