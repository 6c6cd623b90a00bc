"""The gRPC contracts as Python: the stubs generated from protos/azr/v1 (`azr_contracts.v1`)."""
