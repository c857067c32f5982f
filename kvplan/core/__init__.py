"""The pure-arithmetic core: units and the one dtype table (units), layer-kind specs (specs), the family policy
table (families), the config-reading layer (config), model shapes (shapes) and the one binary search (bisection).

No I/O beyond what a caller hands in; imports only kvplan.core itself and kvplan.errors, never torch,
transformers, the engines, planning, the weights, the profiler or the CLI (tests/core/test_layering.py).
"""
