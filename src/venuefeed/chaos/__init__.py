"""The chaos suite: does venuefeed keep "exactly once at rest" when things break?

Simulators (``venuefeed sim``) and the service (``venuefeed run``) run as real
processes; a scenario kills, stalls, cuts and fills while the simulated venues
keep trading; then what landed is compared with each simulator's ground truth.
Run it with ``make chaos`` or ``python -m venuefeed.chaos`` (see ``__main__``).

Modules: :mod:`.procs` (processes), :mod:`.proxy` (a TCP proxy that can
stall), :mod:`.tmpfs` (a small disk), :mod:`.truth` (ground truth),
:mod:`.landed` (the stores), :mod:`.compare`, :mod:`.run` (one scenario's
life cycle and its comparison window), :mod:`.scenarios`, :mod:`.report`.
"""
