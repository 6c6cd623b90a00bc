"""Generation servers: the proposer and the solver (one contract, two roles) over an inference engine."""
