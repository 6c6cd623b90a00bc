"""azr: Absolute Zero self-play, Kubernetes-native.

This package is the method as pure code (docs/method.md, parts 1-7): tasks, prompts, output
parsing, rewards, TRR++ advantages, buffers and the SelfPlayRun spec. It imports no
network, engine or operator library; the services under services/ are thin shells around it,
the gRPC contracts are `azr_contracts` (protos/) and the `azr` command is `azr_launcher`.
"""

__version__ = "0.1.0"
