"""Faust agents: thin loops that hand each batch of their stream to plain code in ``streams``.

Note: ``agents`` is also the import name of another PyPI package; this service runs in its own
virtual environment (see README), where the name is ours.
"""
