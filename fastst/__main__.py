from fastst.quick import main

raise SystemExit(main())
