"""The fault suite (`make test-faults`): the whole system as real processes, faults injected.

Not collected by `make test` (pytest's testpaths do not name it); see docs/testing.md.
"""
