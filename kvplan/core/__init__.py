"""The pure-arithmetic core: units and dtypes, layer-kind specs, the config-reading layer, model shapes.

No I/O beyond what a caller hands in; never imports torch, transformers, the engines or the CLI.
"""
