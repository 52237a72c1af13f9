from fastst.cli import main

raise SystemExit(main())
