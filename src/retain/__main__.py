from retain.cli.main import main

raise SystemExit(main())
