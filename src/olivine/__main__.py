from olivine.cli.main import entry

entry()
