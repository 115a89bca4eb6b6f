from tools.deploy_check.cli import main

raise SystemExit(main())
