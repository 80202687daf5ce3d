"""Tools for testing parsers against recorded payloads: the capture corpus, the
invariants every canonical event keeps, and the mutation fuzzer (``make fuzz``).

Nothing here runs in production; it lives in the package so that tests,
``make fuzz`` and other engineers' tools import one implementation.
"""
