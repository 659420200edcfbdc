"""An ODK Central emulator: the subset of Central's REST, OpenRosa and OData APIs that
collector uses, with fault injection and simulated enumerators.

It imports nothing of ``collector``: it stands in for someone else's server and must not
share our code's mistakes.
"""
