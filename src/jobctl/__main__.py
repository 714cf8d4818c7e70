from jobctl.cli import main

raise SystemExit(main())
