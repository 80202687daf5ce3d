"""Cross-venue pairs: the same question on Kalshi and Polymarket, confirmed by a person.

``match`` suggests candidates, ``store`` keeps them and the decisions
(``market_pairs``), ``fees`` and ``quote`` price a confirmed pair from two
books, ``quoter`` does it continuously inside the service (``pair_quotes``,
bus topic ``arb_spreads``, gauges ``arb_best_edge``, ``arb_crossed_pairs``), and ``suggestions``
is the one entry point the CLI and the API share.
"""
