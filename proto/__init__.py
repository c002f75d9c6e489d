"""The bus contract: every message as a msgspec Struct and every subject name.

Nothing here does I/O. Services import this package and nothing of each other.
"""
