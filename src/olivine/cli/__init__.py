"""The command line: parse, call :mod:`olivine.api`, print. Nothing imports this package."""
