"""The learner: drives the self-play loop and trains the policy with TRR++ (AZR-SPEC sections 2 and 5).

Present so far: the policy loss (`loss.py`). The loop, DeepSpeed training, checkpoints and
the gRPC status service are issue 5's remaining work.
"""
