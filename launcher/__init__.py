"""`azr run`: a SelfPlayRun as local processes (import name `azr_launcher`)."""
