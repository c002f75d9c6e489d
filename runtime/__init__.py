"""The small runtime every service shares: settings, logging, the bus, shutdown.

It holds no domain logic: if something here starts to know about pages,
documents or models, it belongs to a service.
"""
