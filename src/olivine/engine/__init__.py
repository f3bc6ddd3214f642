"""The engine: resolve a run config, run passes through the content-addressed cache, evaluate, output.

Heavy modules are imported by the functions that need them; importing this package stays light.
"""
