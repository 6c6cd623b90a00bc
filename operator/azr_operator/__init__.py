"""The SelfPlayRun operator (import name `azr_operator`; never `operator`, the standard library's):
the CRD generated from the spec model, pure builders from spec to Kubernetes objects, and the
Kopf handlers that apply them."""
