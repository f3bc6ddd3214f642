from olivine.cli.main import main

raise SystemExit(main())
