"""The `azr` command (`cli`) and what starts a run's services: the plan of a run that both
runtimes share (`topology`: the operator renders it as pods), `azr run` as local processes
(`local`, `runner`), `azr report` and `azr eval`."""
