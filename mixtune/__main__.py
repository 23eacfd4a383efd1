from mixtune.cli import main

raise SystemExit(main())
