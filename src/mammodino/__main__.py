from mammodino.cli import main

raise SystemExit(main())
