"""azr: Absolute Zero self-play, Kubernetes-native.

This package is the method as pure code (docs/method.md, parts 1-7): tasks, prompts, output
parsing, rewards, TRR++ advantages, buffers and the SelfPlayRun spec. It imports no
network, engine or operator library; the services under services/ are thin shells around it.
The generated gRPC contracts live in the `azr.v1` subpackage.
"""

__version__ = "0.1.0"
