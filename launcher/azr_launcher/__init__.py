"""The `azr` command (`cli`) and what runs on the user's machine: `azr run` as local processes
(`local`, `runner`), `azr report` and `azr eval`."""
