"""The learner: drives the self-play loop and trains the policy with TRR++ on DeepSpeed
(docs/method.md, parts 2 and 5). docs/learner.md describes it; `azr serve learner` runs it.
"""
