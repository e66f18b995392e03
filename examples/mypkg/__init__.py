"""Custom stages for examples/stages.json5: the README's "Adding your own stage", loaded by the config.

Not installed: Genesis finds this package because it sits next to the config file that names it.
"""
