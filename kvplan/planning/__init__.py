"""Planning: the KV estimate, the serving plan (`recommend`), throughput bounds, and the resolved model they
share. Pure arithmetic over kvplan.core and kvplan.engines; never imports torch.
"""
