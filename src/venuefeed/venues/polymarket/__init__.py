"""Polymarket: Gamma discovery, CLOB books and prices, Data-API trades, the market WebSocket."""
